"""The id rule, checked as a full match everywhere (issue 11, point 6).

`re.match` with `^...$` accepts a trailing newline in Python ("x\\n" matches): every Python
check of an id or a relative path goes through contract.schema (is_valid_id, RelPath).
The expected verdicts below are written by hand from the rule in docs/data-format.md.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract.schema import ImageRef, PaintingRecord, is_valid_id
from contract.store import Dataset
from contract.validate import validate_dataset
from testkit.fixture_dataset import make_dataset

VALID = ["a", "0", "0001_mona-lisa", "a.b_c-d", "A" * 128, "x..y"]
INVALID = ["", "a\n", "a\r\n", "\na", "a\0", ".a", "..", "-a", "_a", "a/b", "a\\b", "a b", "A" * 129,
           "caf\u00e9", "\uff41", None, 5]


@pytest.mark.parametrize("value", VALID)
def test_valid_ids(value):
    assert is_valid_id(value)
    PaintingRecord(id=value)


@pytest.mark.parametrize("value", INVALID)
def test_invalid_ids(value):
    assert not is_valid_id(value)
    with pytest.raises(ValidationError):
        PaintingRecord(id=value)


def test_no_path_from_an_id_with_a_trailing_newline(tmp_path):
    with pytest.raises(ValueError, match="invalid painting id"):
        Dataset(tmp_path).painting_dir("painting-0\n")


def test_a_folder_named_with_a_trailing_newline_is_not_a_painting(tmp_path):
    root = make_dataset(tmp_path / "ds", n_paintings=1, with_stats=False)
    (root / "paintings/painting-0\n").mkdir()
    (root / "paintings/painting-0\n/record.json").write_bytes((root / "paintings/painting-0/record.json").read_bytes())
    assert Dataset(root).painting_ids() == ["painting-0"]
    problems = [(v.location, v.message) for v in validate_dataset(root)]
    assert ("paintings/painting-0\n", "folder name is not a valid painting id") in problems


@pytest.mark.parametrize("path", ["canvas.jpg\n", "canvas.jpg\r", "../canvas.jpg", "/canvas.jpg", "a//b.png"])
def test_relative_paths_in_records_are_full_matches(path):
    with pytest.raises(ValidationError):
        ImageRef(path=path, width=1, height=1)


def test_site_export_refuses_a_dataset_id_with_a_trailing_newline(tmp_path):
    from backend.site import ExportError, export_site

    root = make_dataset(tmp_path / "ds", n_paintings=1, with_stats=False)
    with pytest.raises(ExportError, match="not a valid id"):
        export_site(root, tmp_path / "site", ds_id="my-data\n")
    assert not (tmp_path / "site").exists()
