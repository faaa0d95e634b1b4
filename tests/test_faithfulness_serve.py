"""The faithfulness stage's method maps are served (API route looked up in the catalog, never a
path) and exported (static site), and stats.json carries the dashboard's table."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.site import export_site
from contract.store import Dataset, read_png_u8
from contract.validate import validate_dataset
from testkit.fixture_dataset import make_dataset
from testkit.fixture_faithfulness import CURVES, with_faithfulness


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return with_faithfulness(make_dataset(tmp_path_factory.mktemp("faith") / "faith", n_paintings=2))


def test_the_dataset_is_valid_and_the_stats_hold_the_table(dataset):
    assert validate_dataset(dataset) == []
    stats = json.loads((dataset / "stats.json").read_text())["faithfulness"]
    assert set(stats["table"]) == {"logit", "igos"}
    assert stats["table"]["logit"]["all"]["deletion"]["mean"] == pytest.approx(1 / 3, abs=1e-4)
    assert stats["steps"] == [3]


def test_method_maps_are_served_by_name(dataset):
    client = TestClient(create_app([dataset]))
    pid = Dataset(dataset).painting_ids()[0]
    base = f"/api/datasets/faith/paintings/{pid}/spans/0/methods"
    served = client.get(f"{base}/logit.png")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    import io

    u8 = read_png_u8(io.BytesIO(served.content))
    assert (u8[:, : u8.shape[1] // 2] == 255).all() and (u8[:, u8.shape[1] // 2:] == 0).all()
    for bad in ("gradcam", "..%2Fspans%2F0", "LOGIT", "a" * 40):
        response = client.get(f"{base}/{bad}.png")
        assert response.status_code in (404, 422), bad
        assert "error" in response.json()
    assert client.get(f"/api/datasets/faith/paintings/{pid}/spans/999/methods/logit.png").status_code == 404


def test_the_static_site_ships_the_method_maps(dataset, tmp_path):
    out = tmp_path / "site"
    export_site(dataset, out)
    for pid in Dataset(dataset).painting_ids():
        record = json.loads((out / f"data/faith/paintings/{pid}/record.json").read_text())
        for span in record["spans"]:
            for method in CURVES:
                png = span["faithfulness"]["methods"][method]["map"]["png"]
                assert (out / f"data/faith/paintings/{pid}/{png}").is_file()


def test_token_curves_are_served_with_the_painting(dataset):
    """Per-token curves (`faithfulness --per-token`) travel in the painting's record."""
    client = TestClient(create_app([dataset]))
    pid = Dataset(dataset).painting_ids()[0]
    served = client.get(f"/api/datasets/faith/paintings/{pid}")
    assert served.status_code == 200
    tokens = served.json()["tokens"]
    with_curves = [t for t in tokens if "faithfulness" in t]
    assert [t["index"] for t in with_curves] == [0, 1, 2]
    f = with_curves[0]["faithfulness"]
    assert f["method"] == "tam-reference" and f["steps"] == 3
    assert f["deletion"] == [1, 0.2, 0.1, 0] and f["insertion_area"] == 0.6
