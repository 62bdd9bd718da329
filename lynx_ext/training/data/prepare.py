"""The ``prepare`` step: detect, align and embed every row's identity image(s) once, and cache what training needs.

Output folder (a contract other code reads)::

    prepare_config.json   dataset, metadata, embedder, embedding_dim, detector, lynx_ext_version
    prepared.jsonl        one record per processed row, appended (whole line, flushed) as rows finish
    embeds/<id>.npy       float32 [K, D] unit-norm embeddings of the row's K identity images
    crops/<id>_<k>.png    256x256 RGB reference crop of identity image k
    bad_rows.jsonl        the bad records of prepared.jsonl
    encodings.json, text/, latents/   the encoder caches of ``prepare --recipe`` (`training.encoding_cache`)

Files are written atomically before the line that references them, so a killed run leaves a valid cache and the
next run resumes: rows whose id is in ``prepared.jsonl`` (ok or bad) are skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...atomic_write import atomic_path, write_text_atomic
from ...conditioners.errors import LynxInputError, NoFaceError
from ...conditioners.media import IMAGE, load_frames, media_type, probe_media
from .metadata import DatasetError, MetadataRow, find_metadata, read_metadata

CONFIG_NAME = "prepare_config.json"
PREPARED_NAME = "prepared.jsonl"
BAD_ROWS_NAME = "bad_rows.jsonl"
EMBEDS_DIR = "embeds"
CROPS_DIR = "crops"
FORMAT_VERSION = 1
DATA_KEYS = ("dataset", "metadata")  # checked before any face model loads
MODEL_KEYS = ("embedder", "embedding_dim", "detector")
MAX_UNEXPECTED_IN_A_ROW = 5  # this many consecutive non-data failures stop the run (a setup problem, not bad data)
ANALYSIS_CACHE_SIZE = 256  # identity images shared by several rows are analysed once per run


@dataclass
class PrepareSummary:
    """What one `prepare_dataset` run did (``ok``/``bad``: this run; ``total_*``: the whole cache)."""

    output_dir: Path
    rows: int
    ok: int = 0
    bad: int = 0
    skipped: int = 0
    bad_rows: list[dict] = field(default_factory=list)
    total_ok: int = 0
    total_bad: int = 0
    with_warnings: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def text(self, max_bad: int = 5) -> str:
        """Human-readable summary with the first ``max_bad`` bad rows of this run."""
        lines = [f"prepare: {self.ok} ok, {self.bad} bad, {self.skipped} skipped (already done) of {self.rows} "
                 f"rows in {self.seconds:.1f} s",
                 f"cache {self.output_dir}: {self.total_ok} ok, {self.total_bad} bad rows in {PREPARED_NAME}"]
        if self.with_warnings:
            lines.append(f"{self.with_warnings} ok row(s) have face warnings (the 'warnings' field of {PREPARED_NAME})")
        if self.bad_rows:
            lines.append(f"bad rows (all of them: {self.output_dir / BAD_ROWS_NAME}):")
            for rec in self.bad_rows[:max_bad]:
                media = Path(rec["media"]).name if rec.get("media") else "-"
                lines.append(f"  row {rec['row']} ({media}): {rec['reason']}")
            if len(self.bad_rows) > max_bad:
                lines.append(f"  ... and {len(self.bad_rows) - max_bad} more")
        return "\n".join(self.notes + lines)


class _BadRow(Exception):
    """A row that cannot be used; the message is the recorded reason."""


def prepare_dataset(
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    metadata: str | os.PathLike | None = None,
    face_analyzer=None,
    *,
    face_models: str | os.PathLike | None = None,
    embedder: str = "facexlib",
    detector: str = "insightface",
    device: Optional[str] = None,
    offline_ok: Optional[bool] = None,
    limit: Optional[int] = None,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = True,
) -> PrepareSummary:
    """Analyse the identity image(s) of every metadata row once and cache embeddings, crops and media info.

    Args:
        dataset_dir: the dataset folder (media paths in the metadata are relative to it).
        output_dir: the cache folder (created; an existing cache of the same dataset and models is resumed).
        metadata: the metadata file; default: the folder's ``metadata.csv`` or ``metadata.jsonl``.
        face_analyzer: a ready `FaceAnalyzer`; otherwise one is built from ``face_models``, ``embedder``,
            ``detector``, ``device`` and ``offline_ok`` (see `FaceAnalyzer.from_options`).
        device: ``cpu`` / ``cuda[:i]``; default: cuda if torch sees one (dlib models always run on the CPU).
        limit: only the first ``limit`` rows of the metadata.
        overwrite: delete this folder's cache files first and start fresh.
        progress: show a tqdm bar over the rows.
        verbose: print notes and the summary.

    Returns:
        `PrepareSummary`. Bad rows (missing or corrupt files, empty caption, no face) are recorded, not raised.

    Raises:
        DatasetError: missing dataset / metadata, bad columns, or a cache made from another dataset or other face
            models (unless ``overwrite``). FaceModelsMissingError: face model files are missing.
    """
    t0 = time.perf_counter()
    dataset = Path(os.path.abspath(os.path.expanduser(str(dataset_dir))))
    meta_path = Path(os.path.abspath(find_metadata(dataset, metadata)))
    rows = read_metadata(dataset, meta_path)
    if limit is not None:
        if int(limit) < 0:
            raise DatasetError(f"limit must be >= 0, got {limit}.")
        rows = rows[: int(limit)]
    out = Path(os.path.abspath(os.path.expanduser(str(output_dir))))
    if out.exists() and not out.is_dir():
        raise DatasetError(f"Output {out} exists and is not a folder; pass a folder for the cache.")
    wanted = {"dataset": str(dataset), "metadata": str(meta_path)}
    old = None if overwrite else _read_config(out)
    if old is not None:
        _check_match(old, wanted, DATA_KEYS, out)
    if face_analyzer is None:
        from ...conditioners import FaceAnalyzer

        face_analyzer = FaceAnalyzer.from_options(
            models=face_models, embedder=embedder, detector=detector,
            device=_default_device(device, embedder, detector), offline_ok=offline_ok)
    wanted.update(embedder=str(face_analyzer.embedder.name), embedding_dim=int(face_analyzer.embedder.dim),
                  detector=str(face_analyzer.detector.name))
    if overwrite:
        _clear(out)
    if old is not None:
        _check_match(old, wanted, MODEL_KEYS, out)
    else:
        from ... import __version__

        config = {**wanted, "lynx_ext_version": __version__, "format": FORMAT_VERSION}
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / CONFIG_NAME, json.dumps(config, indent=2) + "\n")

    summary = PrepareSummary(output_dir=out, rows=len(rows))
    done = _load_done(out, summary.notes)
    _rewrite_bad_rows(out, done)
    todo = [row for row in rows if row.id not in done]
    summary.skipped = len(rows) - len(todo)
    changed = sum(1 for row in rows if row.id in done and _changed(row, done[row.id]))
    if changed:
        summary.notes.append(f"note: {changed} already prepared row(s) have a different prompt, identity or id_image "
                             "in the metadata now; their cached records are kept (--overwrite redoes everything).")
    counts = {"ok": sum(r.get("status") == "ok" for r in done.values()),
              "bad": sum(r.get("status") == "bad" for r in done.values())}
    _run(todo, out, face_analyzer, summary, progress)
    summary.total_ok, summary.total_bad = counts["ok"] + summary.ok, counts["bad"] + summary.bad
    summary.seconds = time.perf_counter() - t0
    if verbose:
        print(summary.text())
    return summary


def read_prepared(output_dir: str | os.PathLike, status: Optional[str] = "ok") -> list[dict]:
    """The records of a prepared cache (only those with ``status``; None = all), in file order.

    Raises:
        DatasetError: ``output_dir`` is not a prepared cache (no such folder, or no prepared.jsonl in it).
    """
    folder = Path(output_dir)
    if not (folder / PREPARED_NAME).is_file():
        where = "does not exist" if not folder.exists() else f"has no {PREPARED_NAME}"
        raise DatasetError(f"{folder} {where}: it is not a prepared dataset. Run `diffsynth-ext prepare --extension "
                           f"lynx --dataset DIR --output {folder}` first, or pass the folder it wrote.")
    records = _load_done(folder, notes=[], repair=False).values()
    return [r for r in records if status is None or r.get("status") == status]


# ------------------------------------------------------------------------------------------------ the row loop
def _run(todo: list[MetadataRow], out: Path, analyzer, summary: PrepareSummary, progress: bool) -> None:
    from tqdm.auto import tqdm

    cache: OrderedDict = OrderedDict()
    pending: list[dict] = []  # rows that failed unexpectedly; written once a row succeeds or fails normally
    with open(out / PREPARED_NAME, "a", encoding="utf-8") as prepared, \
            open(out / BAD_ROWS_NAME, "a", encoding="utf-8") as bad_log:
        bar = tqdm(todo, desc="prepare", unit="row", total=summary.rows, initial=summary.rows - len(todo),
                   disable=not progress, file=sys.stderr, dynamic_ncols=True)
        for row in bar:
            rec = _empty_record(row)
            embeds, crops, unexpected = None, [], None
            try:
                embeds, crops = _process(row, rec, analyzer, cache)
            except _BadRow as err:
                rec.update(status="bad", reason=str(err))
            except (MemoryError, RecursionError):
                raise
            except Exception as err:  # noqa: BLE001 - an unforeseen failure on one file must not end the run
                if type(err).__name__ == "OutOfMemoryError":  # torch.cuda: a setup problem, not a bad row
                    raise
                unexpected = err
                rec.update(status="bad", reason=f"unexpected {type(err).__name__}: {_first_line(err)}")
            if unexpected is not None:
                pending.append(rec)
                if len(pending) >= MAX_UNEXPECTED_IN_A_ROW:
                    raise RuntimeError(
                        f"{len(pending)} rows in a row failed with unexpected errors (last: row {row.index}, "
                        f"{rec['reason']}). That points to the face models or the setup rather than the data; "
                        "these rows were not recorded, so fix the cause and run again to resume.") from unexpected
                continue
            for rec_pending in pending:
                _record(rec_pending, None, [], out, prepared, bad_log, summary)
            pending.clear()
            _record(rec, embeds, crops, out, prepared, bad_log, summary)
            bar.set_postfix(ok=summary.ok, bad=summary.bad, refresh=False)
        for rec_pending in pending:
            _record(rec_pending, None, [], out, prepared, bad_log, summary)


def _process(row: MetadataRow, rec: dict, analyzer, cache: OrderedDict) -> tuple[np.ndarray, list]:
    """Fill ``rec`` for one row; return the [K, D] embeddings and K reference crops. Raises `_BadRow`."""
    if row.problem:
        raise _BadRow(row.problem)
    if row.media is None:
        raise _BadRow(f"missing media path: the {row.media_column!r} cell is empty")
    if not row.media.is_file():
        raise _BadRow(f"media file not found: {row.media}")
    if not row.prompt:
        raise _BadRow("empty caption: the prompt/caption cell is empty")
    for path in row.id_images:
        if not path.is_file():
            raise _BadRow(f"identity image not found: {path}")
    try:
        rec.update(probe_media(row.media))
    except LynxInputError as err:
        raise _BadRow(f"unreadable media: {err}") from err
    if row.id_images:
        sources = [(path, None) for path in row.id_images]
    elif rec["media_type"] == IMAGE:
        sources = [(row.media, None)]
    else:
        rec["id_frame"] = rec["num_frames"] // 2
        sources = [(row.media, rec["id_frame"])]
    results = []
    for k, (path, frame) in enumerate(sources):
        name = str(path) if frame is None else f"{path} (frame {frame})"
        try:
            result = _analyze(analyzer, path, frame, cache)
        except NoFaceError as err:
            rec["faces_found"].append(0)
            raise _BadRow(f"no face found in identity image {name} by {analyzer.detector.name}") from err
        except LynxInputError as err:
            raise _BadRow(f"unreadable identity image {name}: {err}") from err
        rec["faces_found"].append(int(result.num_faces))
        rec["warnings"].extend(f"identity image {k}: {w}" for w in result.warnings)
        results.append(result)
    embeds = np.stack([np.asarray(r.embedding, dtype=np.float32) for r in results])
    crops = [r.ref_crop.convert("RGB") for r in results]
    for crop in crops:
        if crop.size != (256, 256):
            raise RuntimeError(f"reference crop of {row.media} is {crop.size[0]}x{crop.size[1]}, expected 256x256")
    rec.update(embedding=f"{EMBEDS_DIR}/{row.id}.npy",
               ref_crops=[f"{CROPS_DIR}/{row.id}_{k}.png" for k in range(len(crops))])
    return embeds, crops


def _analyze(analyzer, path: Path, frame: Optional[int], cache: OrderedDict):
    key = (str(path), frame)
    if key in cache:
        cache.move_to_end(key)
        hit = cache[key]
        if isinstance(hit, Exception):
            raise hit
        return hit
    try:
        image = path if frame is None else load_frames(path, [frame])[0]
        hit = analyzer.analyze(image)
    except LynxInputError as err:  # includes NoFaceError
        hit = err
    cache[key] = hit
    if len(cache) > ANALYSIS_CACHE_SIZE:
        cache.popitem(last=False)
    if isinstance(hit, Exception):
        raise hit
    return hit


def _record(rec: dict, embeds, crops, out: Path, prepared, bad_log, summary: PrepareSummary) -> None:
    """Write the row's files (atomically), then its line (whole, flushed, synced)."""
    if rec["status"] == "ok":
        with atomic_path(out / rec["embedding"]) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, embeds)
        for crop, rel in zip(crops, rec["ref_crops"]):
            with atomic_path(out / rel) as tmp:
                crop.save(tmp, format="PNG")
        summary.ok += 1
        summary.with_warnings += bool(rec["warnings"])
    else:
        rec.update(embedding=None, ref_crops=[])
        summary.bad += 1
        summary.bad_rows.append(rec)
    line = json.dumps(rec, ensure_ascii=False) + "\n"
    targets = (prepared, bad_log) if rec["status"] == "bad" else (prepared,)
    for f in targets:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _empty_record(row: MetadataRow) -> dict:
    return {
        "id": row.id, "row": row.index, "status": "ok", "reason": None,
        "media": str(row.media) if row.media else None,
        "media_type": media_type(row.media) if row.media else None,
        "num_frames": None, "width": None, "height": None, "fps": None,
        "prompt": row.prompt, "identity": row.identity,
        "id_images": [str(p) for p in row.id_images] or ([str(row.media)] if row.media else []),
        "id_frame": None, "embedding": None, "ref_crops": [], "faces_found": [], "warnings": [],
    }


# ------------------------------------------------------------------------------------------------ the cache folder
def _read_config(out: Path) -> Optional[dict]:
    path = out / CONFIG_NAME
    if not path.is_file():
        if (out / PREPARED_NAME).is_file():
            raise DatasetError(f"{out} has a {PREPARED_NAME} but no {CONFIG_NAME}, so it cannot be resumed safely; "
                               "pass --overwrite to start fresh or choose another --output.")
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path} is unreadable ({err}); pass --overwrite to start fresh.") from err
    if not isinstance(config, dict):
        raise DatasetError(f"{path} is not a JSON object; pass --overwrite to start fresh.")
    return config


def _check_match(old: dict, new: dict, keys: tuple, out: Path) -> None:
    diffs = [f"{k}: cache {old.get(k)!r}, now {new[k]!r}" for k in keys if old.get(k) != new[k]]
    if diffs:
        raise DatasetError(f"The cache in {out} was prepared differently ({'; '.join(diffs)}). Resuming would mix "
                           "the two; pass --overwrite to start fresh or choose another --output.")


def _clear(out: Path) -> None:
    from ..encoding_cache import INDEX_NAME, LATENTS_DIR, TEXT_DIR

    for name in (PREPARED_NAME, BAD_ROWS_NAME, CONFIG_NAME, INDEX_NAME):  # prepared.jsonl first: no half-cleared
        (out / name).unlink(missing_ok=True)                               # cache resumes
    for name in (EMBEDS_DIR, CROPS_DIR, TEXT_DIR, LATENTS_DIR):
        shutil.rmtree(out / name, ignore_errors=True)


def _load_done(out: Path, notes: list[str], repair: bool = True) -> dict[str, dict]:
    """Records of ``prepared.jsonl`` by id. Damaged lines (e.g. a write cut by a crash) are dropped; with
    ``repair`` the file is rewritten without them."""
    path = out / PREPARED_NAME
    if not path.is_file():
        return {}
    done: dict[str, dict] = {}
    good_lines, damaged = [], 0
    text = path.read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or rec["id"] in done:
            damaged += 1
            continue
        done[rec["id"]] = rec
        good_lines.append(line)
    if repair and (damaged or (text and not text.endswith("\n"))):
        write_text_atomic(path, "".join(line + "\n" for line in good_lines))
        if damaged:
            notes.append(f"note: dropped {damaged} damaged or duplicate line(s) from {path}; those rows are redone.")
    return done


def _rewrite_bad_rows(out: Path, done: dict[str, dict]) -> None:
    """Make ``bad_rows.jsonl`` hold exactly the bad records of ``prepared.jsonl``."""
    bad = [rec for rec in done.values() if rec.get("status") == "bad"]
    write_text_atomic(out / BAD_ROWS_NAME, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in bad))


def _changed(row: MetadataRow, rec: dict[str, Any]) -> bool:
    id_images = [str(p) for p in row.id_images] or ([str(row.media)] if row.media else [])
    return (rec.get("prompt") != row.prompt or rec.get("identity") != row.identity
            or rec.get("id_images") != id_images)


def _default_device(device: Optional[str], embedder: str, detector: str) -> str:
    if device:
        from ...validation.device import check_device

        return check_device(device)  # a device that is not on this machine is an error, never a fallback
    if embedder == "dlib" and detector == "dlib":
        return "cpu"  # dlib runs on the CPU; skip importing torch
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def _first_line(err: BaseException, limit: int = 300) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
