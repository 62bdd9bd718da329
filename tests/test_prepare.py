"""``prepare``: dataset format, media reading, the face cache (ok/bad rows, resume, interruption, config checks), CLI.

Real offline models (dlib HOG detector + dlib ResNet embedder) on scikit-image's public-domain ``astronaut``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lynx_ext.cli.prepare import main as prepare_cli
from lynx_ext.conditioners import FaceAnalyzer, LynxInputError
from lynx_ext.training.data import (DatasetError, load_frames, prepare_dataset, probe_media, read_metadata,
                                    read_prepared, row_id)

# (media, prompt, id_image, identity); the rows in BAD are bad for that reason
ROWS = [
    ("a.png", "an astronaut smiling", "", "astro"),
    ("b.jpg", "an astronaut, shifted", "", "astro"),
    ("clip.mp4", "an astronaut in a short video", "", "astro"),
    ("corrupt.jpg", "a broken file", "", ""),
    ("a.png", "", "", "astro"),
    ("grey.png", "a flat grey square", "", ""),
    ("missing.mp4", "a file that is not there", "", ""),
    ("clip.mp4", "a video, with two identity images", "a.png|b.jpg", "astro"),
    ("a.png", "a corrupt identity image", "corrupt.jpg", ""),
]
BAD = {3: "unreadable media", 4: "empty caption", 5: "no face found", 6: "media file not found",
       8: "unreadable identity image"}
OK = [0, 1, 2, 7]
DLIB = dict(detector="dlib", embedder="dlib")


def _face() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[20:276, 90:346])  # 256x256 around the face: fast to analyse


def _write_csv(path: Path, rows) -> None:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "prompt", "id_image", "identity"])
        writer.writerows(rows)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    import imageio.v2 as imageio

    root = tmp_path_factory.mktemp("dataset")
    face = _face()
    Image.fromarray(face).save(root / "a.png")
    Image.fromarray(np.roll(face, (3, 5), (0, 1))).save(root / "b.jpg", quality=95)
    imageio.mimwrite(root / "clip.mp4", [np.roll(face, (i, 2 * i), (0, 1)) for i in range(6)], fps=8,
                     macro_block_size=16)
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 20)
    Image.new("RGB", (256, 256), (128, 128, 128)).save(root / "grey.png")
    _write_csv(root / "metadata.csv", ROWS)
    return root


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer.from_options(offline_ok=True, **DLIB)


class Counting:
    """Wraps an analyzer: counts ``analyze`` calls and can raise KeyboardInterrupt on call ``interrupt_at``."""

    def __init__(self, inner, interrupt_at=None):
        self.inner, self.detector, self.embedder = inner, inner.detector, inner.embedder
        self.calls, self.interrupt_at = 0, interrupt_at

    def analyze(self, image):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.inner.analyze(image)


class MeanColourEmbedder:
    """A different (toy) embedder, to provoke a config mismatch."""

    name, dim, input_size = "test-mean-colour", 16, 112

    def embed_aligned(self, crop):
        return np.asarray(crop, np.float32).reshape(16, -1).mean(1) + 1.0


def _lines(out: Path, name="prepared.jsonl") -> list[dict]:
    return [json.loads(line) for line in (out / name).read_text().splitlines()]


# ------------------------------------------------------------------------------------------------ format and media
def test_metadata_columns_aliases_and_ids(tmp_path):
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps({"Image": "x.png", "caption": " hi ", "id_image": ["p/1.png", "2.png"], "identity": "ann"}) + "\n\n"
        + json.dumps({"image": "y.png", "caption": "there"}) + "\n")
    rows = read_metadata(tmp_path)
    assert [r.index for r in rows] == [0, 1] and rows[0].prompt == "hi" and rows[0].identity == "ann"
    assert rows[0].media == tmp_path / "x.png" and rows[0].id_images == [tmp_path / "p/1.png", tmp_path / "2.png"]
    assert rows[1].id_images == [] and rows[1].identity is None
    assert rows[0].id == row_id(0, "x.png") and rows[0].id.startswith("000000_") and rows[0].id != rows[1].id
    assert [r.id for r in read_metadata(tmp_path)] == [r.id for r in rows]  # stable
    (tmp_path / "mixed.csv").write_text(
        "video,image,prompt,id_image\nv.mp4,,a,1.png|2.png\n,i.png,b,\nv.mp4,i.png,c,\n")
    mixed = read_metadata(tmp_path, tmp_path / "mixed.csv")
    assert [r.media_column for r in mixed[:2]] == ["video", "image"] and len(mixed[0].id_images) == 2
    assert mixed[2].problem and "several media columns" in mixed[2].problem


@pytest.mark.parametrize("header, needle, accepted", [
    ("vidoe,prompt", "unknown column.*'vidoe'", "video | image | media"),
    ("path,prompt", "unknown column.*'path'", "prompt | caption"),
    ("video,identity", "no caption column", "prompt | caption"),
    ("prompt,identity", "no media column", "video | image | media"),
    ("video,prompt,caption", "both prompt and caption", "keep one"),
])
def test_metadata_column_errors(tmp_path, header, needle, accepted):
    (tmp_path / "metadata.csv").write_text(header + "\n" + ",".join("x" * len(header.split(","))) + "\n")
    with pytest.raises(DatasetError, match=needle) as err:
        read_metadata(tmp_path)
    assert accepted in str(err.value)


def test_metadata_file_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_metadata(tmp_path / "nope")
    with pytest.raises(DatasetError, match="No metadata.csv or metadata.jsonl"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.csv").write_text("video,prompt\na.mp4,x\n")
    (tmp_path / "metadata.jsonl").write_text('{"video": "a.mp4", "prompt": "x"}\n{broken\n')
    with pytest.raises(DatasetError, match="both metadata.csv and metadata.jsonl"):
        read_metadata(tmp_path)
    with pytest.raises(DatasetError, match="line 2: not valid JSON"):
        read_metadata(tmp_path, "metadata.jsonl")


def test_probe_and_load_frames(dataset):
    assert probe_media(dataset / "clip.mp4") == {"media_type": "video", "num_frames": 6, "width": 256,
                                                 "height": 256, "fps": 8.0}
    assert probe_media(dataset / "a.png") == {"media_type": "image", "num_frames": 1, "width": 256, "height": 256,
                                              "fps": None}
    frames = load_frames(dataset / "clip.mp4", [3, 0])
    assert len(frames) == 2 and frames[0].size == (256, 256) and frames[0].mode == "RGB"
    assert len(load_frames(dataset / "clip.mp4")) == 6 and len(load_frames(dataset / "a.png")) == 1
    for bad in ("corrupt.jpg", "missing.mp4"):
        with pytest.raises(LynxInputError, match=bad):
            probe_media(dataset / bad)
    fake = dataset.parent / "fake.mp4"
    fake.write_bytes(b"not a video" * 50)
    with pytest.raises(LynxInputError, match="fake.mp4"):
        probe_media(fake)
    with pytest.raises(LynxInputError, match="past the end"):
        load_frames(dataset / "clip.mp4", [6])


# ------------------------------------------------------------------------------------------------ the prepare step
def test_prepare_ok_and_bad_rows(dataset, analyzer, tmp_path):
    out = tmp_path / "cache"
    summary = prepare_dataset(dataset, out, face_analyzer=analyzer, progress=False, verbose=False)
    assert (summary.ok, summary.bad, summary.skipped, summary.total_ok, summary.total_bad) == (4, 5, 0, 4, 5)
    config = json.loads((out / "prepare_config.json").read_text())
    assert config["dataset"] == str(dataset) and config["metadata"] == str(dataset / "metadata.csv")
    assert (config["embedder"], config["embedding_dim"], config["detector"]) == ("dlib-resnet-v1", 128, "dlib-hog-68")
    assert config["lynx_ext_version"]
    recs = {r["row"]: r for r in _lines(out)}
    assert sorted(recs) == list(range(len(ROWS)))
    for i, needle in BAD.items():
        assert recs[i]["status"] == "bad" and needle in recs[i]["reason"], recs[i]
        assert recs[i]["embedding"] is None and recs[i]["ref_crops"] == []
    assert recs[5]["faces_found"] == [0]
    assert [r["row"] for r in _lines(out, "bad_rows.jsonl")] == sorted(BAD)
    assert [r["row"] for r in summary.bad_rows] == sorted(BAD)
    for i in OK:
        rec = recs[i]
        assert rec["status"] == "ok" and rec["reason"] is None and rec["prompt"] == ROWS[i][1]
        assert rec["identity"] == "astro" and Path(rec["media"]).is_absolute()
        assert rec["embedding"] == f"embeds/{rec['id']}.npy"
        emb = np.load(out / rec["embedding"])
        k = 2 if i == 7 else 1
        assert emb.shape == (k, 128) and emb.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
        assert rec["ref_crops"] == [f"crops/{rec['id']}_{j}.png" for j in range(k)] and len(rec["faces_found"]) == k
        for crop in rec["ref_crops"]:
            image = Image.open(out / crop)
            assert image.size == (256, 256) and image.mode == "RGB"
    assert recs[2]["media_type"] == "video" and recs[2]["num_frames"] == 6 and recs[2]["fps"] == 8.0
    assert recs[2]["id_frame"] == 3 and recs[2]["id_images"] == [str(dataset / "clip.mp4")]
    assert recs[0]["media_type"] == "image" and recs[0]["fps"] is None and recs[0]["width"] == 256
    assert recs[7]["id_images"] == [str(dataset / "a.png"), str(dataset / "b.jpg")]
    np.testing.assert_allclose(np.load(out / recs[7]["embedding"])[0], np.load(out / recs[0]["embedding"])[0])
    assert float(np.load(out / recs[2]["embedding"])[0] @ np.load(out / recs[0]["embedding"])[0]) > 0.9  # same face
    assert read_prepared(out) == [recs[i] for i in OK] and len(read_prepared(out, status=None)) == len(ROWS)
    text = summary.text()
    assert "4 ok, 5 bad, 0 skipped" in text and "row 5 (grey.png): no face found" in text


def test_resume_processes_each_row_once(dataset, analyzer, tmp_path):
    out, counting = tmp_path / "cache", Counting(analyzer)
    first = prepare_dataset(dataset, out, face_analyzer=counting, limit=3, progress=False, verbose=False)
    assert (first.ok, first.bad, first.skipped, counting.calls) == (3, 0, 0, 3)
    second = prepare_dataset(dataset, out, face_analyzer=counting, progress=False, verbose=False)
    assert (second.ok, second.bad, second.skipped, second.total_ok, second.total_bad) == (1, 5, 3, 4, 5)
    assert counting.calls == 3 + 4  # grey.png, a.png + b.jpg of row 7, corrupt.jpg; rows 0-2 were not redone
    third = prepare_dataset(dataset, out, face_analyzer=counting, progress=False, verbose=False)
    assert (third.ok, third.bad, third.skipped, counting.calls) == (0, 0, len(ROWS), 7)
    ids = [r["id"] for r in _lines(out)]
    assert len(ids) == len(set(ids)) == len(ROWS)
    assert len(_lines(out, "bad_rows.jsonl")) == len(BAD)


def test_interrupted_run_leaves_a_valid_cache(dataset, analyzer, tmp_path):
    out = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(dataset, out, face_analyzer=Counting(analyzer, interrupt_at=3), progress=False, verbose=False)
    recs = _lines(out)  # every line parses
    assert [r["row"] for r in recs] == [0, 1]
    for rec in recs:
        assert (out / rec["embedding"]).is_file() and all((out / c).is_file() for c in rec["ref_crops"])
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # no half-written files
    with open(out / "prepared.jsonl", "a") as f:
        f.write('{"id": "000002_cut-off-by-a-cra')  # a line torn by a hard kill is dropped and redone
    summary = prepare_dataset(dataset, out, face_analyzer=analyzer, progress=False, verbose=False)
    assert (summary.ok, summary.bad, summary.skipped) == (2, len(BAD), 2)
    assert any("dropped 1 damaged" in note for note in summary.notes)
    assert sorted(r["row"] for r in _lines(out)) == list(range(len(ROWS)))


def test_config_mismatch_is_refused_and_overwrite_starts_fresh(dataset, analyzer, tmp_path):
    out = tmp_path / "cache"
    prepare_dataset(dataset, out, face_analyzer=analyzer, limit=2, progress=False, verbose=False)
    other = FaceAnalyzer(analyzer.detector, MeanColourEmbedder())
    with pytest.raises(DatasetError, match="embedder: cache 'dlib-resnet-v1', now 'test-mean-colour'.*--overwrite"):
        prepare_dataset(dataset, out, face_analyzer=other, progress=False, verbose=False)
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    with pytest.raises(DatasetError, match="dataset: cache"):  # refused before any face model loads
        prepare_dataset(copy, out, face_models=tmp_path / "no-such-models", progress=False, verbose=False)
    summary = prepare_dataset(dataset, out, face_analyzer=other, limit=2, overwrite=True, progress=False,
                              verbose=False)
    assert (summary.ok, summary.skipped) == (2, 0)
    assert json.loads((out / "prepare_config.json").read_text())["embedding_dim"] == 16
    assert len(_lines(out)) == 2 and np.load(out / "embeds" / f"{row_id(0, 'a.png')}.npy").shape == (1, 16)


class Broken:
    """An analyzer that fails with an unforeseen error (not a data problem)."""

    def __init__(self, inner, fail_calls):
        self.inner, self.detector, self.embedder = inner, inner.detector, inner.embedder
        self.calls, self.fail_calls = 0, fail_calls

    def analyze(self, image):
        self.calls += 1
        if self.calls in self.fail_calls:
            raise RuntimeError("boom")
        return self.inner.analyze(image)


def test_unexpected_errors_mark_the_row_or_stop_a_broken_setup(dataset, analyzer, tmp_path):
    out = tmp_path / "cache"
    summary = prepare_dataset(dataset, out, face_analyzer=Broken(analyzer, {1}), limit=3, progress=False,
                              verbose=False)
    assert (summary.ok, summary.bad) == (2, 1) and summary.bad_rows[0]["reason"] == "unexpected RuntimeError: boom"
    many = tmp_path / "many"
    many.mkdir()
    _write_csv(many / "metadata.csv", [(str(dataset / "a.png"), f"row {i}", "", "") for i in range(7)])
    with pytest.raises(RuntimeError, match="5 rows in a row failed with unexpected errors"):
        prepare_dataset(many, tmp_path / "many_cache", face_analyzer=Broken(analyzer, set(range(1, 100))),
                        progress=False, verbose=False)
    assert (tmp_path / "many_cache" / "prepared.jsonl").read_text() == ""  # not recorded: a rerun retries them


# ------------------------------------------------------------------------------------------------ command line
def _console_script() -> str:
    return shutil.which("diffsynth-ext") or str(Path(sys.executable).parent / "diffsynth-ext")


def test_cli_end_to_end_and_resume_refusal(dataset, tmp_path):
    out = tmp_path / "cache"
    cmd = [_console_script(), "prepare", "--extension", "lynx", "--dataset", str(dataset), "--output", str(out),
           "--detector", "dlib", "--embedder", "dlib", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LYNX_EXT_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "prepare: 4 ok, 5 bad, 0 skipped (already done) of 9 rows" in proc.stdout
    for i, needle in BAD.items():
        assert f"row {i} ({ROWS[i][0]}): {needle}" in proc.stdout
    assert "prepare:" not in proc.stderr  # --quiet: no progress bar
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    cmd[cmd.index(str(dataset))] = str(copy)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: The cache in") and "--overwrite" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_fatal_errors_are_one_line(dataset, tmp_path, capsys):
    def run(*args):
        rc = prepare_cli(["--output", str(tmp_path / "out"), "--quiet", *args])
        return rc, capsys.readouterr().err.strip()

    rc, err = run("--dataset", str(tmp_path / "nope"))
    assert rc == 2 and "Dataset folder" in err and "does not exist" in err and len(err.splitlines()) == 1
    (tmp_path / "empty").mkdir()
    rc, err = run("--dataset", str(tmp_path / "empty"))
    assert rc == 2 and "No metadata.csv or metadata.jsonl" in err
    bad = tmp_path / "badcols"
    bad.mkdir()
    (bad / "metadata.csv").write_text("clip,prompt\na.mp4,x\n")
    rc, err = run("--dataset", str(bad))
    assert rc == 2 and "unknown column(s) 'clip'" in err
    models = tmp_path / "models"
    models.mkdir()
    rc, err = run("--dataset", str(dataset), "--face-models", str(models), "--embedder", "insightface")
    assert rc == 2 and len(err.splitlines()) == 1
    for name in ("det_10g.onnx", "w600k_r50.onnx"):  # every face model file of the run at once, in that folder
        assert f"{name} -> {models / name}" in err, err
    rc, err = run("--dataset", str(dataset), "--limit", "-1")
    assert rc == 2 and "--limit" in err


@pytest.mark.parametrize("name, text, needle", [
    ("metadata.csv", "image,prompt\n", "has a header but no rows"),
    ("metadata.csv", "video,prompt\n\n  \n", "has a header but no rows"),
    ("metadata.jsonl", "\n", "has no rows"),
])
def test_metadata_without_rows_says_so(tmp_path, name, text, needle):
    """A metadata file with no rows is reported as such (not as missing its media column)."""
    from lynx_ext.training.data.metadata import DatasetError, read_metadata

    (tmp_path / name).write_text(text)
    with pytest.raises(DatasetError) as info:
        read_metadata(tmp_path)
    assert needle in str(info.value) and "column" not in str(info.value).split(";")[0], str(info.value)
