"""`tamscope validate`: every violation listed with its location, non-zero exit."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract.store import encode_png
from contract.validate import validate_dataset
from testkit.fixture_dataset import make_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "ds", n_paintings=2, with_stats=False)


def edit_record(root, pid, change):
    path = root / "paintings" / pid / "record.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_fixture_is_valid(dataset):
    assert validate_dataset(dataset) == []


def test_each_violation_is_located(dataset):
    (dataset / "paintings/painting-0/spans/2.png").unlink()
    (dataset / "paintings/painting-0/tokens/1.png").write_bytes(encode_png(np.zeros((3, 3), np.uint8)))
    edit_record(dataset, "painting-1", lambda d: d["spans"][0].update(category="LANDSCAPE"))
    edit_record(dataset, "painting-1", lambda d: d["tokens"][0].update(text="XX"))
    edit_record(dataset, "painting-1", lambda d: d.update(thumb={"path": "../../../etc/passwd", "width": 1, "height": 1}))
    (dataset / "paintings/stray").mkdir()
    (dataset / "paintings/.hidden").mkdir()
    found = {str(v) for v in validate_dataset(dataset)}
    expected_fragments = [
        "paintings/painting-0/record.json:spans.2.map: spans/2.png does not exist",
        "paintings/painting-0/record.json:tokens.1.map: tokens/1.png is 3x3, expected 8x6",
        "paintings/painting-1/record.json:spans.0.category",
        "paintings/painting-1/record.json:thumb.path",
        "paintings/stray/record.json: missing",
        "paintings/.hidden: folder name is not a valid painting id",
    ]
    for fragment in expected_fragments:
        assert any(line.startswith(fragment) for line in found), (fragment, sorted(found))


def test_text_offsets_and_manifest_agreement(dataset):
    edit_record(dataset, "painting-0", lambda d: d["tokens"][0].update(text="XX", end=d["tokens"][0]["start"] + 2))
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["paintings"].append({**manifest["paintings"][0], "id": "ghost"})
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    found = {str(v) for v in validate_dataset(dataset)}
    assert "paintings/painting-0/record.json:tokens.0: text differs from the caption at its offsets" in found
    assert "manifest.json:paintings: 'ghost' has no folder under paintings/" in found


def test_cli_exit_codes(dataset, tmp_path):
    cmd = [sys.executable, "-m", "tamscope.cli", "validate"]
    ok = subprocess.run(cmd + [str(dataset)], capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0 and "valid" in ok.stdout
    (dataset / "manifest.json").write_text("{not json")
    bad = subprocess.run(cmd + [str(dataset)], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 1 and bad.stdout.startswith("manifest.json")
    missing = subprocess.run(cmd + [str(tmp_path / "nowhere")], capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 1 and "not a folder" in missing.stdout


def test_symbolic_links_are_violations(dataset, tmp_path):
    """A painting folder or a record linked out of the dataset would validate as the place it
    names; the server follows no link, so every link below the dataset folder is reported."""
    import shutil

    outside = tmp_path / "elsewhere"
    shutil.copytree(dataset / "paintings/painting-0", outside / "painting-0")
    shutil.rmtree(dataset / "paintings/painting-0")
    (dataset / "paintings/painting-0").symlink_to(outside / "painting-0")  # the whole folder, a valid copy
    record = dataset / "paintings/painting-1/record.json"
    (outside / "record.json").write_bytes(record.read_bytes())
    record.unlink()
    record.symlink_to(outside / "record.json")  # a record, identical to the one it replaces
    found = {str(v) for v in validate_dataset(dataset)}
    assert any(line.startswith("paintings/painting-0: ") and "symbolic link" in line for line in found), found
    assert any(line.startswith("paintings/painting-1/record.json: ") and "symbolic link" in line for line in found)


def test_a_linked_file_inside_its_folder_is_a_violation_too(dataset):
    canvas = dataset / "paintings/painting-0/canvas.jpg"
    copy = dataset / "paintings/painting-0/canvas-copy.jpg"
    copy.write_bytes(canvas.read_bytes())
    canvas.unlink()
    canvas.symlink_to("canvas-copy.jpg")
    found = [str(v) for v in validate_dataset(dataset)]
    assert found == ["paintings/painting-0/record.json:canvas: canvas.jpg is a symbolic link (a dataset holds none: "
                     "the server follows no link)"]


def test_match_fields_are_optional_and_consistent(dataset):
    """Records written before spans said how they were found (the fixture's) stay valid; the
    fields, when there, agree with each other."""
    assert "match" not in json.loads((dataset / "paintings/painting-0/record.json").read_text())["spans"][0]

    def approximate(d):
        d["spans"][0].update(match="approximate", similarity=0.86, phrase="a boat in the harbour")

    edit_record(dataset, "painting-0", approximate)
    assert validate_dataset(dataset) == []
    edit_record(dataset, "painting-0", lambda d: d["spans"][0].update(match="exact"))  # similarity left over
    edit_record(dataset, "painting-1", lambda d: d["spans"][0].update(match="approximate"))  # no similarity
    edit_record(dataset, "painting-1", lambda d: d["spans"][1].update(start=None, end=None, tokens=[], match="exact"))
    edit_record(dataset, "painting-1", lambda d: d["spans"][2].update(match="fuzzy"))
    found = sorted(str(v) for v in validate_dataset(dataset))
    for where, what in [("painting-0/record.json:spans.0", "similarity is set for an approximate match"),
                        ("painting-1/record.json:spans.0", "similarity is set for an approximate match"),
                        ("painting-1/record.json:spans.1", "has no match"),
                        ("painting-1/record.json:spans.2.match", "")]:
        assert any(f"paintings/{where}" in line and what in line for line in found), (where, found)
