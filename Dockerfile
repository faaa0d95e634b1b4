# tamscope images (docs/deploy.md). No GPU or model weights are needed to build either.
#
#   docker build -t tamscope .                                   explorer + JSON API, no torch
#   docker run --rm -p 8000:8000 tamscope                        serves the embedded smoke dataset
#   docker build --target precompute -t tamscope-precompute .   adds the model stack (torch, transformers)

FROM python:3.11-slim AS base
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


# The model stack for `tamscope precompute` (torch is pinned by pyproject.toml).
#   docker run --rm -v "$PWD/paintings:/in:ro" -v "$PWD/out:/out" -v "$HOME/.cache/huggingface:/hf" \
#       tamscope-precompute precompute /in /out/my-dataset
FROM base AS precompute
RUN pip install -e ".[precompute]"
ENV HF_HOME=/hf
USER 1000
ENTRYPOINT ["tamscope"]
CMD ["--help"]


# The default target: the explorer and the JSON API, without torch.
#   docker run --rm -p 8000:8000 -v "$PWD/my-dataset:/datasets/mine:ro" \
#       -e TAMSCOPE_DATA=/datasets/mine -e TAMSCOPE_WORKERS=2 tamscope
FROM base AS serve
# the build fails here if the embedded dataset does not validate, or if the server would need torch
RUN pip install -e . \
    && python -c "import sys; from backend.app import create_app; create_app(['data/smoke']); assert 'torch' not in sys.modules"
USER 1000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"]
CMD ["tamscope", "serve", "--host", "0.0.0.0", "--port", "8000"]
