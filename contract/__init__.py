"""The dataset contract: what every part of tamscope reads (docs/data-format.md).

schema (pydantic models of every JSON file), store (reading and atomic writing of a dataset
folder), validate, metrics (localisation metrics of a map), stats (dataset statistics),
textmatch (finding a phrase in a caption), names (painting ids and image files), images
(opening images from outside safely: one pixel limit).
Writers (precompute/, sources/) and apps (backend/) import it; it imports none of them.
"""
