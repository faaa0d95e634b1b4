# The tamscope image: the explorer and the JSON API, without torch (docs/deploy.md).
#
#   docker build -t tamscope .                     podman: add --format docker (keeps the HEALTHCHECK)
#   docker run --rm -p 8000:8000 tamscope          the embedded smoke dataset on http://127.0.0.1:8000
#
# The model stack is a second image built on this one (Dockerfile.precompute), so that no
# builder, with BuildKit or without, builds torch for `docker build .`. Neither needs a GPU or
# model weights to build.

# Any Debian-based Python >= 3.11 with `python` and `pip` first on PATH: a mirror's copy of the
# official image, or one bootstrapped from a Debian mirror (`python3 -m deploy.image base`).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 1000 tamscope  # USER 1000 below: numeric for hosts without the name
WORKDIR /app
# What the package needs at run time and nothing else (.dockerignore keeps out the rest).
# The explorer (frontend/) and the embedded datasets (data/) live beside the Python packages,
# which find them relative to their own files: hence the editable install from /app.
COPY pyproject.toml README.md ./
COPY tamscope tamscope
COPY contract contract
COPY sources sources
COPY backend backend
COPY precompute precompute
COPY frontend frontend
COPY data data
# pip settings for this build only (offline and proxied sites, docs/deploy.md): a pip.conf on a
# build-time mount; unset, pip uses its defaults. Nothing of it stays in the image.
ARG PIP_CONFIG_FILE
# the build fails here if the embedded dataset does not validate, or if the server would need torch
RUN pip install -e . \
    && python -c "import sys; from backend.app import create_app; create_app(['data/smoke']); assert 'torch' not in sys.modules"
USER 1000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"]
CMD ["tamscope", "serve", "--host", "0.0.0.0", "--port", "8000"]
