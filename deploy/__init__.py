"""Building and checking the container images from a checkout (`make image`, docs/deploy.md).
Standard library only: it runs before any virtualenv exists. Not installed with the package."""
