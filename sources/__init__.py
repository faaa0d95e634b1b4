"""Data in, other than the model pipeline: downloads and importers that write input folders
or datasets (docs/data-in.md). download (one careful HTTP fetcher), tamart_format (the paper
authors' project-page data, as pydantic models), tamart_site (mirror of their project page),
tamart_import (their data as a dataset), wikiart (an input folder of WikiArt's most viewed
paintings)."""
