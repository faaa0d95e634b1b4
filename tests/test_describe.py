"""The describe stage end to end on a tiny random-weight Qwen2-VL (real transformers code)."""

from __future__ import annotations

import argparse
import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contract.names import painting_id
from contract.store import Dataset, read_png_u8
from contract.validate import validate_dataset
from precompute.stages import describe
from testkit.harness import stage_args
from tests.kill import kill_repeatedly

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
SQUARE, WIDE = painting_id("square.png"), painting_id("wide.png")


def args_for(input_dir, dataset, model, **over):
    parser = argparse.ArgumentParser()
    describe.configure(parser)
    argv = [str(input_dir), str(dataset), "--model", str(model), "--max-new-tokens", "16", "--device", "cpu"]
    for key, value in over.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def paintings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paintings")
    rng = np.random.default_rng(0)
    for name, (w, h) in {"square": (224, 224), "wide": (448, 336)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    (folder / "annotations.json").write_text('{"square": {"title": "Square", "artist": "A. Painter"}}')
    return folder


@pytest.fixture(scope="module")
def described(paintings, tiny_qwen2vl_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "ds"
    assert describe.run(args_for(paintings, out, tiny_qwen2vl_dir)) == 0
    return Dataset(out)


# by default the model sees at least 256*28*28 pixels, as in the authors' pipeline: 224x224 is
# upscaled by 2 (16x16 cells of 28 px); 448x336 by sqrt(200704 / 150528), sides rounded up to
# multiples of 28: ceil(13.86) = 14 and ceil(18.48) = 19 cells
@pytest.mark.parametrize("pid, grid", [(SQUARE, (16, 16)), (WIDE, (14, 19))])
def test_grid_tokens_offsets_maps(described, pid, grid):
    rec = described.record(pid)
    assert (rec.grid.h, rec.grid.w) == grid
    assert 1 <= len(rec.tokens) <= 16
    assert "".join(rec.caption[t.start:t.end] for t in rec.tokens) == rec.caption
    assert [t.end for t in rec.tokens[:-1]] == [t.start for t in rec.tokens[1:]]
    folder = described.painting_dir(pid)
    for token in rec.tokens:  # one 8-bit map per generated token, on the grid
        png = read_png_u8(folder / token.map.png)
        assert png.shape == grid
        assert np.isfinite([token.map.lo, token.map.hi]).all() and token.map.lo <= token.map.hi
    from safetensors.numpy import load_file

    raw = load_file(folder / "tam_raw.safetensors")
    assert raw["maps"].shape == (len(rec.tokens), *grid)
    assert np.isfinite(raw["raw"]).all() and (raw["maps"] >= 0).all() and (raw["maps"] <= 1).all()
    assert raw["token_ids"].tolist() == [t.id for t in rec.tokens]
    assert (rec.canvas.width, rec.canvas.height) == Image.open(folder / "canvas.jpg").size == (grid[1] * 28, grid[0] * 28)


def test_annotations_manifest_and_validation(described):
    assert described.record(SQUARE).annotations.artist == "A. Painter"
    manifest = described.manifest()
    assert manifest.models["captioner"].revision == "local"
    assert manifest.settings["describe"]["max_new_tokens"] == 16
    assert manifest.settings["describe"]["tam_variant"] == "reference"  # the default
    assert validate_dataset(described.root) == []


def teacher_forced_states(model_dir, painting_path, prompt, token_ids, dtype):
    """The model's last-layer states over prompt + caption, recomputed here from the painting."""
    from precompute.captioner_inputs import model_image, prompt_inputs, teacher_forced_inputs
    from precompute.models import load_captioner
    from precompute.paintings import load_painting

    cap = load_captioner(str(model_dir), device="cpu", dtype=dtype)
    inputs = prompt_inputs(cap, model_image(load_painting(painting_path).image), prompt)
    forced = teacher_forced_inputs(inputs, token_ids)
    with torch.no_grad():
        hidden = cap.model.model(**forced).last_hidden_state[0]
    return cap, inputs["input_ids"].shape[1], forced["input_ids"][0], hidden


@pytest.mark.parametrize("variant", ["reference", "corrected"])
def test_stored_maps_are_the_loop_references(paintings, tiny_qwen2vl_dir, tmp_path, variant):
    """End to end on the tiny Qwen2-VL: the 8-bit maps describe stores equal the plain loops of
    testkit on states recomputed here, with the strings the authors' code would read. (corrected
    runs in float64, where its float arithmetic agrees with the loop's to the last 8-bit level.)"""
    from testkit.tam_loop import corrected_loop, reference_loop

    over = {} if variant == "reference" else {"tam_variant": "corrected", "dtype": "float64"}
    assert describe.run(args_for(paintings, tmp_path / "ds", tiny_qwen2vl_dir, **over)) == 0
    ds = Dataset(tmp_path / "ds")
    rec = ds.record(WIDE)
    assert rec.stages["describe"].settings["tam_variant"] == variant
    assert rec.provenance["tam"]["variant"] == variant
    ids = [t.id for t in rec.tokens]
    cap, n_prompt, full, hidden = teacher_forced_states(tiny_qwen2vl_dir, paintings / "wide.png", rec.prompt, ids,
                                                        over.get("dtype", "float32"))
    tok, head = cap.processor.tokenizer, cap.model.get_output_embeddings().weight.detach()
    image_pos = (full == cap.image_token_id).nonzero()[:, 0]
    vision_end = int((full == tok.convert_tokens_to_ids("<|vision_end|>")).nonzero()[0, 0])
    im_end = next(i for i in range(vision_end, n_prompt) if full[i] == tok.convert_tokens_to_ids("<|im_end|>"))
    prompt_pos = list(range(vision_end + 1, im_end))
    gen_pos = list(range(n_prompt, n_prompt + len(ids)))
    grid = (rec.grid.h, rec.grid.w)
    if variant == "reference":
        decode = lambda x: tok.decode(x, skip_special_tokens=False, clean_up_tokenization_spaces=False)  # noqa: E731
        prompt_strings = tok.tokenize(decode(full[prompt_pos].tolist()))
        stop = [tok.convert_tokens_to_ids("<|im_end|>")] if len(ids) < 16 else []  # it stopped on its end token
        strings = prompt_strings + tok.tokenize(decode(ids + stop))
        want = reference_loop(hidden, head, full, image_pos, grid, prompt_pos, gen_pos, strings, len(prompt_strings))
        assert rec.provenance["tam"]["first_prompt_class"]["id"] == want[0]["cls"]
    else:
        want = corrected_loop(hidden.numpy(), head.numpy(), full.numpy(), image_pos.tolist(), grid, prompt_pos,
                              gen_pos)
    for token, ref in zip(rec.tokens, want, strict=True):
        np.testing.assert_array_equal(read_png_u8(ds.painting_dir(WIDE) / token.map.png), ref["u8"])


def test_a_changed_variant_redoes_describe_on_resume(paintings, tiny_qwen2vl_dir, tmp_path, capsys):
    out = tmp_path / "ds"
    assert describe.run(args_for(paintings, out, tiny_qwen2vl_dir)) == 0
    ds = Dataset(out)
    before = {t.index: read_png_u8(ds.painting_dir(SQUARE) / t.map.png) for t in ds.record(SQUARE).tokens}
    assert describe.run(args_for(paintings, out, tiny_qwen2vl_dir)) == 0
    assert "0 done, 2 already done" in capsys.readouterr().out
    assert describe.run(args_for(paintings, out, tiny_qwen2vl_dir, tam_variant="corrected")) == 0
    assert "2 done, 0 already done" in capsys.readouterr().out
    rec = ds.record(SQUARE)
    assert rec.stages["describe"].settings["tam_variant"] == "corrected" == rec.provenance["tam"]["variant"]
    assert ds.manifest().settings["describe"]["tam_variant"] == "corrected"
    after = {t.index: read_png_u8(ds.painting_dir(SQUARE) / t.map.png) for t in rec.tokens}
    assert not np.array_equal(before[0], after[0])  # token 0: the first prompt word's map, then its own


def test_identical_across_runs(described, paintings, tiny_qwen2vl_dir, tmp_path):
    assert describe.run(args_for(paintings, tmp_path / "again", tiny_qwen2vl_dir)) == 0
    again = Dataset(tmp_path / "again")
    for pid in (SQUARE, WIDE):
        a, b = described.record(pid), again.record(pid)
        assert a.caption == b.caption and a.tokens == b.tokens
        for token in a.tokens:
            assert (read_png_u8(described.painting_dir(pid) / token.map.png)
                    == read_png_u8(again.painting_dir(pid) / token.map.png)).all()


def test_hidden_states_are_what_the_lm_head_reads(tiny_qwen2vl_dir):
    """last_hidden_state @ lm_head reproduces the model's own logits: post final norm."""
    from precompute.models import load_captioner

    cap = load_captioner(str(tiny_qwen2vl_dir), device="cpu")
    ids = torch.tensor([[20, 30, 40, 50]])
    with torch.no_grad():
        hidden = cap.model.model(input_ids=ids).last_hidden_state
        logits = cap.model(input_ids=ids).logits
    torch.testing.assert_close(hidden @ cap.model.get_output_embeddings().weight.T, logits)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with one tiny (invalid) data chunk: a decoder
    that trusted the header would allocate width * height * 3 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_bad_inputs_recorded_and_stage_goes_on(paintings, tiny_qwen2vl_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.png").write_bytes((paintings / "square.png").read_bytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "words.png").write_text("hello")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    whole = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(whole, "JPEG")
    (folder / "cut.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 3])  # truncated mid-scan
    (folder / "huge.png").write_bytes(png_header(20000, 20000))  # 400 MP claimed by the header alone
    out = tmp_path / "ds"
    assert describe.run(args_for(folder, out, tiny_qwen2vl_dir)) == 1
    ds = Dataset(out)
    stems = {painting_id(p.name): p.stem for p in folder.iterdir()}
    errors = {stems[f.painting]: f.error for f in ds.manifest().failures}
    assert set(errors) == {"empty", "words", "dot", "cut", "huge"}
    assert "empty file" in errors["empty"] and "not an image" in errors["words"] and "1x1" in errors["dot"]
    assert "corrupt or truncated" in errors["cut"]
    assert "too large" in errors["huge"] and "400000000 pixels" in errors["huge"]
    assert all(len(e) < 400 and "Traceback" not in e for e in errors.values())
    assert ds.record(painting_id("good.png")).caption
    assert validate_dataset(out) == []


@pytest.mark.parametrize("model", ["./no/such/model-folder", "Qwen/Qwen2-VL-NotInCache-2B"])
def test_missing_weights_clear_error(paintings, tmp_path, model, monkeypatch, capsys):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("TAMSCOPE_ONLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # hermetic: the hub's answer is tests/test_hub.py's matter
    out = tmp_path / "ds"
    assert describe.run(args_for(paintings, out, model)) == 1
    failures = Dataset(out).manifest().failures
    assert len(failures) == 2 and all(model in f.error for f in failures)
    assert "Traceback" not in capsys.readouterr().out


def test_kill_and_resume(paintings, tiny_qwen2vl_dir, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(4):
        (folder / f"p{i}.png").write_bytes((paintings / "square.png").read_bytes())
    out = tmp_path / "ds"
    args = ["describe", str(folder), str(out), "--model", str(tiny_qwen2vl_dir), "--max-new-tokens", "8",
            "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    slow = [sys.executable, "-m", "tests.slow_cli", "30"]  # a pause after each painting: the kill lands there
    proc = subprocess.Popen(slow + args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    ids = [painting_id(f"p{i}.png") for i in range(4)]  # describe goes by file name
    while not (out / "paintings" / ids[0] / "record.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ds = Dataset(out)
    assert ds.painting_ids() == ids[:1]
    first = ds.record(ids[0]).stages["describe"].finished
    assert not list(out.rglob("*.tmp"))
    done = subprocess.run([sys.executable, "-m", "tamscope.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 done, 1 already done, 0 failed" in done.stdout
    assert ds.record(ids[0]).stages["describe"].finished == first
    assert ds.painting_ids() == sorted(ids) and validate_dataset(out) == []


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}



def test_a_failed_rerun_destroys_nothing(described, paintings, tmp_path, capsys):
    """Re-running describe with a model that is not there (and another canvas size) on a finished
    dataset with spans and span maps: every file stays byte for byte, the failure is appended."""
    import shutil

    from precompute.stages import spanmaps, spans

    root = tmp_path / "ds"
    shutil.copytree(described.root, root)
    assert spans.run(stage_args(spans, [root, "--model", "lexicon"])) == 0
    assert spanmaps.run(stage_args(spanmaps, [root])) == 0
    ds = Dataset(root)
    before = {pid: ds.record(pid) for pid in ds.painting_ids()}
    assert all(r.spans and r.spans[0].map for r in before.values())
    files = {k: v for k, v in snapshot(root).items() if not k.endswith(".json")}
    assert describe.run(args_for(paintings, root, tmp_path / "no-such-model", max_pixels=300 * 28 * 28)) == 1
    assert "2 failed (2 keep their earlier result)" in capsys.readouterr().out
    assert {k: v for k, v in snapshot(root).items() if not k.endswith(".json")} == files
    for pid, old in before.items():
        now = ds.record(pid)
        assert now.model_dump(exclude={"failures"}) == old.model_dump(exclude={"failures"})
        assert [f.stage for f in now.failures] == ["describe"] and "no-such-model" in now.failures[0].error
    assert {f.painting for f in ds.manifest().failures} == set(before)
    assert [p.status for p in ds.manifest().paintings] == ["ok", "ok"]
    assert validate_dataset(root) == [] and validate_dataset(root, paintings) == []
    from precompute.pipeline import summary

    assert "  describe     0 done     2 failed  (2 keep an earlier result)" in summary(root, None, ["describe"])


def test_resume_follows_the_input(paintings, tiny_qwen2vl_dir, tmp_path, capsys):
    """Replace an image, edit a title, add 一.png, remove a file, then resume: each is noticed."""
    import shutil

    folder = tmp_path / "in"
    shutil.copytree(paintings, folder)
    out = tmp_path / "ds"
    assert describe.run(args_for(folder, out, tiny_qwen2vl_dir)) == 0
    ds = Dataset(out)
    square, wide = ds.record(SQUARE), ds.record(WIDE)
    canvas = (ds.painting_dir(WIDE) / "canvas.jpg").read_bytes()
    assert validate_dataset(out, folder) == []

    Image.fromarray(np.full((336, 448, 3), 200, np.uint8)).save(folder / "wide.png")  # other bytes
    (folder / "annotations.json").write_text('{"square": {"title": "Square, retitled", "artist": "A. Painter"}}')
    shutil.copy(folder / "square.png", folder / "一.png")
    stale = [str(v) for v in validate_dataset(out, folder)]
    assert len(stale) == 3, stale  # validate does not say "valid" for a dataset that no longer matches
    assert any("wide" in v and "described from other bytes" in v for v in stale)
    assert any(v.endswith("annotations: differ from the annotations of square.png in " + str(folder)
                          + ": run precompute again") for v in stale)
    assert any(v.startswith(str(folder / "一.png")) and "not in the dataset" in v for v in stale)

    capsys.readouterr()
    assert describe.run(args_for(folder, out, tiny_qwen2vl_dir)) == 0
    printed = capsys.readouterr().out
    assert "describe: 2 done, 1 already done, 0 failed" in printed  # wide.png and 一.png
    assert "annotations changed for 1 painting(s): record updated, caption kept" in printed
    now = ds.record(SQUARE)
    assert now.annotations.title == "Square, retitled" and now.tokens == square.tokens
    assert now.stages["describe"] == square.stages["describe"]  # not captioned again
    assert (ds.painting_dir(WIDE) / "canvas.jpg").read_bytes() != canvas
    assert ds.record(WIDE).provenance["input"]["sha256"] != wide.provenance["input"]["sha256"]
    assert ds.record(painting_id("一.png")).caption
    assert ds.manifest().paintings[[p.id for p in ds.manifest().paintings].index(SQUARE)].title == "Square, retitled"
    assert validate_dataset(out, folder) == []

    (folder / "wide.png").unlink()
    assert describe.run(args_for(folder, out, tiny_qwen2vl_dir)) == 0
    printed = capsys.readouterr().out
    assert "1 painting(s) of the dataset have no input file any more" in printed and f"{WIDE} (wide.png)" in printed
    assert ds.has_record(WIDE)  # reported, never deleted
    assert [str(v) for v in validate_dataset(out, folder)] == [
        f"paintings/{WIDE}: its input file wide.png is no longer in {folder} (delete the folder to drop the painting)"]


def test_deep_and_animated_images_give_true_canvases(tiny_qwen2vl_dir, tmp_path, capsys):
    """A 16-bit PNG and a float32 TIFF used to become white and black canvases; an animated GIF
    gives its first frame. The canvas is compared with values computed from the raw arrays."""
    folder = tmp_path / "in"
    folder.mkdir()
    # 448 x 448 = 256*28*28, the least the model sees: the canvas keeps the image's own pixels
    ramp = np.tile(np.linspace(0, 1, 448), (448, 1))  # (448, 448): dark left, light right
    Image.fromarray(np.floor(ramp * 65535).astype(np.uint16)).save(folder / "deep.png")
    Image.fromarray(ramp.astype(np.float32)).save(folder / "float.tif")
    frames = [Image.new("RGB", (448, 448), (200, 30, 30)), Image.new("RGB", (448, 448), (30, 30, 200))]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:])
    out = tmp_path / "ds"
    assert describe.run(args_for(folder, out, tiny_qwen2vl_dir)) == 0
    printed = capsys.readouterr().out
    assert "moving.gif: 2 frames (animated or multi-page): the first frame is used" in printed
    assert "deep.png: 16-bit grayscale scaled to 8 bits" in printed
    ds = Dataset(out)
    expected = ramp * 255  # the gray level each pixel should have
    for name in ("deep.png", "float.tif"):
        rec = ds.record(painting_id(name))
        canvas = np.asarray(Image.open(ds.painting_dir(rec.id) / "canvas.jpg").convert("L"), dtype=np.float64)
        assert np.abs(canvas - expected).mean() < 2, name  # JPEG's loss only
        assert rec.provenance["input"]["notes"]
    gif = ds.record(painting_id("moving.gif"))
    first = np.asarray(Image.open(ds.painting_dir(gif.id) / "canvas.jpg").convert("RGB"), dtype=np.float64)
    assert np.abs(first - [200, 30, 30]).mean() < 4
    assert gif.provenance["input"]["notes"] == ["2 frames (animated or multi-page): the first frame is used"]


def test_kill_at_random_moments_then_resume(paintings, tiny_qwen2vl_dir, tmp_path, monkeypatch):
    """kill -9 four times at random moments around the paintings' commits, then resume: every
    file is byte-identical to an uninterrupted run's."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        (folder / f"p{i}.png").write_bytes((paintings / ("square.png" if i % 2 else "wide.png")).read_bytes())
    epoch = "1767225600"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)  # timestamps equal across runs, so bytes compare
    reference = tmp_path / "reference" / "ds"  # the same folder name: the manifest's default name
    assert describe.run(args_for(folder, reference, tiny_qwen2vl_dir, max_new_tokens=8)) == 0

    out = tmp_path / "ds"
    argv = [sys.executable, "-m", "tamscope.cli", "describe", str(folder), str(out), "--model", str(tiny_qwen2vl_dir),
            "--max-new-tokens", "8", "--device", "cpu"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": epoch, "OMP_NUM_THREADS": "1"}
    delays = kill_repeatedly(argv, env, out / "paintings", times=4, max_delay=0.6)
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(out) == snapshot(reference), f"killed after {delays}"
    assert validate_dataset(out, folder) == []


@pytest.mark.parametrize("bounds", [{"max_pixels": 700}, {"min_pixels": 5000, "max_pixels": 4000}])
def test_impossible_pixel_bounds_are_refused(paintings, tmp_path, bounds):
    with pytest.raises(SystemExit, match="--min-pixels <= --max-pixels"):
        describe.run(args_for(paintings, tmp_path / "ds", "unused-model", **bounds))
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("variant", ["reference", "corrected"])
def test_span_maps_average_what_the_variant_says(paintings, tiny_qwen2vl_dir, tmp_path, variant):
    """reference: a span map is the mean of its tokens' stored 8-bit maps, as TAMArt's pipeline
    averages them; corrected: the mean of the filtered float maps. Rebuilt here with cv2 and
    safetensors from the stored files, min-max stretched to 0..255 by hand."""
    import cv2
    from safetensors.numpy import load_file

    from precompute.stages import spanmaps, spans

    root = tmp_path / "ds"
    assert describe.run(args_for(paintings, root, tiny_qwen2vl_dir, tam_variant=variant)) == 0
    assert spans.run(stage_args(spans, [root, "--model", "lexicon"])) == 0
    assert spanmaps.run(stage_args(spanmaps, [root])) == 0
    ds, checked = Dataset(root), 0
    for pid in ds.painting_ids():
        folder, rec = ds.painting_dir(pid), ds.record(pid)
        floats = load_file(folder / "tam_raw.safetensors")["maps"].astype(np.float64)
        for span in (s for s in rec.spans if s.tokens):
            if variant == "reference":
                stack = [cv2.imread(str(folder / rec.tokens[t].map.png), cv2.IMREAD_GRAYSCALE) / 255.0 for t in span.tokens]
            else:
                stack = [floats[t] for t in span.tokens]
            mean = np.mean(stack, axis=0)
            lo, hi = mean.min(), mean.max()
            want = np.zeros(mean.shape, np.uint8) if hi - lo <= 1e-12 else np.round((mean - lo) / (hi - lo) * 255)
            got = cv2.imread(str(folder / span.map.png), cv2.IMREAD_GRAYSCALE)
            assert np.array_equal(got, want), (pid, span.index)
            assert (span.map.lo, span.map.hi) == pytest.approx((lo, hi), abs=1e-12)
            checked += 1
    assert checked >= 2, "the lexicon found too few phrases with tokens to check anything"
