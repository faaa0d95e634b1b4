"""The apps that serve datasets: the FastAPI server (app, cli), the static-site export (site)
and `tamscope demo`. They read datasets through contract/ and never write them."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRONTEND = REPO / "frontend"  # the explorer: static files, no build step
SMOKE = REPO / "data" / "smoke"  # the embedded smoke dataset, served when no dataset is given
