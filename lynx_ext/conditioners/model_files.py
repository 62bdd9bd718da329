"""Where face model files live, and how a missing one is fetched (online) or reported (offline).

Nothing here downloads unless a file is missing *and* ``offline_ok`` is false. insightface's ``buffalo_*`` packs
and facexlib's ArcFace come from their GitHub releases; ``antelopev2`` from ModelScope or the Hugging Face hub
(`HUB_PACKS`, source as in `lynx_ext.models.hub`). A failed download and an offline run both end in
`FaceModelsMissingError`, which names the file, where to put it and where to get it.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterable, Optional

from ..models.hub import OFFLINE_ENV, HubFolder, fetch_folder, offline_mode  # noqa: F401 - re-exported
from .errors import FaceModelsMissingError, LynxInputError

INSIGHTFACE_ROOT = "~/.insightface"
INSIGHTFACE_ZOO_URL = "https://github.com/deepinsight/insightface/releases/download/model-zoo/{name}.zip"
DEFAULT_PACK = "buffalo_l"
# Detector / recognizer file of each insightface model pack (insightface's model zoo).
PACK_DETECTORS = {"buffalo_l": "det_10g.onnx", "buffalo_m": "det_2.5g.onnx", "buffalo_s": "det_500m.onnx",
                  "buffalo_sc": "det_500m.onnx", "antelopev2": "scrfd_10g_bnkps.onnx"}
PACK_RECOGNIZERS = {"buffalo_l": "w600k_r50.onnx", "buffalo_m": "w600k_r50.onnx", "buffalo_s": "w600k_mbf.onnx",
                    "buffalo_sc": "w600k_mbf.onnx", "antelopev2": "glintr100.onnx"}
DOWNLOADABLE_PACKS = ("buffalo_l", "buffalo_m", "buffalo_s", "buffalo_sc")  # by insightface's own downloader
# Packs published on ModelScope and the Hugging Face hub (the copy DiffSynth's InfiniteYou pipeline uses).
HUB_PACKS = {"antelopev2": HubFolder(
    repos={"modelscope": "ByteDance/InfiniteYou", "huggingface": "ByteDance/InfiniteYou"},
    folder="supports/insightface/models/antelopev2",
    files=("scrfd_10g_bnkps.onnx", "glintr100.onnx"))}
NONCOMMERCIAL = "InsightFace's pretrained models are licensed for non-commercial research only."

FACEXLIB_ARCFACE_FILE = "recognition_arcface_ir_se50.pth"
FACEXLIB_ARCFACE_URL = "https://github.com/xinntao/facexlib/releases/download/v0.1.0/recognition_arcface_ir_se50.pth"

DLIB_FILES = {
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks_5": "shape_predictor_5_face_landmarks.dat",
    "landmarks_68": "shape_predictor_68_face_landmarks.dat",
}
DLIB_URL = "http://dlib.net/files/{name}.bz2"



def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lynx_ext`` (default ``~/.cache/lynx_ext``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lynx_ext"


# --------------------------------------------------------------------------------------------- insightface packs
def resolve_detector_file(models: str | os.PathLike | None = None, root: str | os.PathLike = INSIGHTFACE_ROOT,
                          offline_ok: Optional[bool] = None) -> Path:
    """The SCRFD ``.onnx`` to use.

    ``models`` may be a detector ``.onnx`` file, a pack folder (``det_10g.onnx`` inside), an insightface root
    (``models/buffalo_l/`` inside), a pack name (``buffalo_l``, looked up under ``root/models``) or None (=
    ``root/models/buffalo_l``). Missing packs are fetched unless offline: ``buffalo_*`` with insightface's own
    downloader, ``antelopev2`` from ModelScope or the Hugging Face hub.
    """
    root = Path(os.path.expanduser(str(root)))
    if models is None:
        models = DEFAULT_PACK
    text = os.path.expanduser(str(models))
    path = Path(text)
    if text.endswith(".onnx"):
        if path.is_file():
            return path
        raise FaceModelsMissingError("Face detector", path.name, path, hint="Check the path given as face models.")
    if path.is_dir():
        found = _find_in_pack(path, PACK_DETECTORS, prefixes=("det_", "scrfd"))
        if found is None and (path / "models" / DEFAULT_PACK).is_dir():
            found = _find_in_pack(path / "models" / DEFAULT_PACK, PACK_DETECTORS, prefixes=("det_", "scrfd"))
        if found is None:
            raise FaceModelsMissingError(
                "Face detector", PACK_DETECTORS[DEFAULT_PACK], path / PACK_DETECTORS[DEFAULT_PACK],
                INSIGHTFACE_ZOO_URL.format(name=DEFAULT_PACK),
                hint=f"(unzip the pack so the .onnx files sit directly in {path}). {NONCOMMERCIAL}",
            )
        return found
    if os.sep in text or "/" in text or text.startswith("."):
        raise LynxInputError(f"Face models path {text} does not exist. Pass a folder with det_10g.onnx or the file.")
    return _pack_file(text, root, PACK_DETECTORS, "Face detector", offline_ok, prefixes=("det_", "scrfd"))


def resolve_recognizer_file(pack_dir: Path, root: str | os.PathLike = INSIGHTFACE_ROOT) -> Path:
    """The ArcFace ``.onnx`` next to the detector (``w600k_r50.onnx`` in buffalo_l)."""
    found = _find_in_pack(pack_dir, PACK_RECOGNIZERS, prefixes=("w600k", "glint", "arcface"))
    if found is None:
        name = pack_dir.name if pack_dir.name in PACK_RECOGNIZERS else DEFAULT_PACK
        raise FaceModelsMissingError(
            "ArcFace ONNX recognizer", PACK_RECOGNIZERS[name], pack_dir / PACK_RECOGNIZERS[name],
            INSIGHTFACE_ZOO_URL.format(name=name) if name in DOWNLOADABLE_PACKS else None,
            hint=f"Or use embedder='facexlib' (the official Lynx recognizer). {NONCOMMERCIAL}",
        )
    return found


def download_insightface_pack(name: str, root: Path) -> Path:
    """insightface's own download + unzip of ``{root}/models/{name}`` (a hook tests can replace)."""
    from insightface.utils.storage import ensure_available

    return Path(ensure_available("models", name, root=str(root)))


def _pack_file(name: str, root: Path, table: dict, what: str, offline_ok: Optional[bool],
               prefixes: Iterable[str]) -> Path:
    pack_dir = root / "models" / name
    filename = table.get(name, table[DEFAULT_PACK])
    found = _find_in_pack(pack_dir, table, prefixes)
    if found is not None:
        return found
    if name in HUB_PACKS:
        return _hub_pack_file(name, table, what, offline_ok, prefixes)
    url = INSIGHTFACE_ZOO_URL.format(name=name) if name in DOWNLOADABLE_PACKS else None
    hint = (f"Unzip the pack so the .onnx files sit directly in {pack_dir}, or pass that folder or the .onnx file as "
            f"face models (--face-models). {NONCOMMERCIAL}")
    if name not in DOWNLOADABLE_PACKS:
        raise FaceModelsMissingError(what, filename, pack_dir / filename, url,
                                     hint=f"insightface cannot download {name!r} automatically. {hint}")
    if offline_mode(offline_ok):
        raise FaceModelsMissingError(what, filename, pack_dir / filename, url, hint=hint)
    try:
        pack_dir = download_insightface_pack(name, root)
    except Exception as err:  # network errors of requests/urllib, bad zip, disk full ...
        raise FaceModelsMissingError(what, filename, pack_dir / filename, url, hint=hint, cause=err) from err
    found = _find_in_pack(pack_dir, table, prefixes)
    if found is None:
        raise FaceModelsMissingError(what, filename, pack_dir / filename, url,
                                     hint=f"{pack_dir} exists but lacks it; delete the folder and retry. {hint}")
    return found


def host_model_dir() -> Path:
    """Where DiffSynth keeps hub downloads: ``$DIFFSYNTH_MODEL_BASE_PATH``, default ``./models``."""
    return Path(os.environ.get("DIFFSYNTH_MODEL_BASE_PATH") or "models")


def _hub_pack_file(name: str, table: dict, what: str, offline_ok: Optional[bool], prefixes: Iterable[str]) -> Path:
    """A pack of `HUB_PACKS`: DiffSynth's copy if it has one, else ours, else downloaded into ours."""
    hub = HUB_PACKS[name]
    repo = hub.repos["modelscope"]
    for base in (host_model_dir() / repo, cache_dir() / repo):
        if hub.present(base / hub.folder):
            return _find_in_pack(base / hub.folder, table, prefixes)
    try:
        folder = fetch_folder(f"{what} (insightface {name})", hub, cache_dir() / repo, offline_ok=offline_ok,
                              alternative=f"Or pass that folder as face models (--face-models). {NONCOMMERCIAL}")
    except FileNotFoundError as err:
        filename = table.get(name, table[DEFAULT_PACK])
        missing = FaceModelsMissingError(what, filename, cache_dir() / repo / hub.folder / filename)
        missing.message = str(err)  # the hub's account: the files, every source tried, where to place them
        raise missing from None
    return _find_in_pack(folder, table, prefixes)


def _find_in_pack(folder: Path, table: dict, prefixes: Iterable[str]) -> Optional[Path]:
    if not folder.is_dir():
        return None
    preferred = [table[folder.name]] if folder.name in table else []
    for name in preferred + list(dict.fromkeys(table.values())):
        if (folder / name).is_file():
            return folder / name
    for prefix in prefixes:
        hits = sorted(folder.glob(f"{prefix}*.onnx"))
        if hits:
            return hits[0]
    return None


# --------------------------------------------------------------------------------------------- facexlib weights
def facexlib_weight_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    """Folders searched for ``recognition_arcface_ir_se50.pth``: ``extra``, our cache, facexlib's weights folder."""
    dirs = [Path(p) for p in extra] + [cache_dir() / "facexlib"]
    spec = importlib.util.find_spec("facexlib")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(list(spec.submodule_search_locations)[0]) / "weights")
    return list(dict.fromkeys(dirs))


def download_url(url: str, destination: Path) -> None:
    """torch.hub's atomic download (temp file, then rename); a hook tests can replace."""
    from torch.hub import download_url_to_file

    destination.parent.mkdir(parents=True, exist_ok=True)
    download_url_to_file(url, str(destination), hash_prefix=None, progress=True)


def find_weights(weights, filename: str, what: str, url: str, folders: Iterable[Path]) -> Optional[Path]:
    """``weights`` (a file, or a folder holding ``filename``; missing: `FaceModelsMissingError` naming it), else the
    first of ``folders`` that holds ``filename``, else None."""
    if weights is not None:
        path = Path(os.path.expanduser(str(weights)))
        if path.is_dir():
            path = path / filename
        if path.is_file():
            return path
        raise FaceModelsMissingError(what, path.name, path, url)
    for folder in folders:
        if (Path(folder) / filename).is_file():
            return Path(folder) / filename
    return None


def resolve_facexlib_weights(weights: str | os.PathLike | None = None, search_dirs: Iterable[Path] = (),
                             offline_ok: Optional[bool] = None) -> Path:
    """Path of ``recognition_arcface_ir_se50.pth``: the given file, else the first hit in `facexlib_weight_dirs`,
    else downloaded into ``~/.cache/lynx_ext/facexlib/`` (unless offline)."""
    folders = facexlib_weight_dirs(search_dirs)
    found = find_weights(weights, FACEXLIB_ARCFACE_FILE, "facexlib ArcFace weights", FACEXLIB_ARCFACE_URL, folders)
    if found is not None:
        return found
    destination = cache_dir() / "facexlib" / FACEXLIB_ARCFACE_FILE
    hint = "Searched: " + ", ".join(str(f) for f in folders) + "." if len(folders) > 1 else ""
    if offline_mode(offline_ok):
        raise FaceModelsMissingError("facexlib ArcFace weights", FACEXLIB_ARCFACE_FILE, destination,
                                     FACEXLIB_ARCFACE_URL, hint=hint)
    try:
        download_url(FACEXLIB_ARCFACE_URL, destination)
    except Exception as err:  # URLError, HTTPError, SSL errors, timeouts ...
        raise FaceModelsMissingError("facexlib ArcFace weights", FACEXLIB_ARCFACE_FILE, destination,
                                     FACEXLIB_ARCFACE_URL, hint=hint, cause=err) from err
    return destination


# --------------------------------------------------------------------------------------------- dlib model files
def resolve_dlib_file(kind: str, model_dir: str | os.PathLike | None = None) -> Path:
    """A dlib ``.dat`` file (``kind`` in `DLIB_FILES`) from ``model_dir`` or the ``face-recognition-models`` package.

    That package is located without importing it (its ``__init__`` needs ``pkg_resources``).
    """
    name = DLIB_FILES[kind]
    dirs = [Path(os.path.expanduser(str(model_dir)))] if model_dir is not None else []
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(list(spec.submodule_search_locations)[0]) / "models")
    for folder in dirs:
        if (folder / name).is_file():
            return folder / name
    target = dirs[0] / name if dirs else Path("<model_dir>") / name
    raise FaceModelsMissingError(
        "dlib model", name, target, DLIB_URL.format(name=name),
        hint="(bunzip2 it), or `pip install face-recognition-models`, which ships these files (CC0).",
    )


# --------------------------------------------------------------------------------------- every file, named at once
def missing_face_files(models: str | os.PathLike | None = None, embedder: str = "facexlib",
                       detector: str = "insightface", root: str | os.PathLike = INSIGHTFACE_ROOT
                       ) -> list[tuple[str, str, Optional[str]]]:
    """``[(file, folder, url)]``: every face model file these options (`FaceAnalyzer.from_options`'s) need that is
    not on disk, where it goes and where it is published. Nothing is downloaded; a run that cannot download names
    them all at once instead of one per run."""
    out: list[tuple[str, str, Optional[str]]] = []

    def probe(resolve, folder: Optional[Path] = None):
        try:
            return resolve()
        except FaceModelsMissingError as err:
            out.append((err.filename, str(folder or err.destination.parent), err.url))
            return None

    given = Path(os.path.expanduser(str(models))) if models is not None else None
    user = given if given is not None and given.is_dir() else None
    pack_dir = None
    if detector == "insightface":
        found = probe(lambda: resolve_detector_file(models, root=root, offline_ok=True))
        pack_dir = found.parent if found is not None else None
        if found is None and str(embedder) in ("insightface", "onnx"):  # the same pack's recognizer: the same zip
            folder = Path(out[-1][1])
            pack = folder.name if folder.name in PACK_RECOGNIZERS else DEFAULT_PACK
            out.append((PACK_RECOGNIZERS[pack], str(folder), out[-1][2]))
    elif detector == "dlib":
        probe(lambda: resolve_dlib_file("landmarks_68", user))
    text = str(embedder)
    if text == "facexlib":
        search = [p for p in (user, pack_dir) if p is not None]
        probe(lambda: resolve_facexlib_weights(None, search_dirs=search, offline_ok=True), folder=user)
    elif text in ("insightface", "onnx") and pack_dir is not None:
        probe(lambda: resolve_recognizer_file(pack_dir))
    elif text == "dlib":
        for kind in ("landmarks_5", "recognition"):
            probe(lambda kind=kind: resolve_dlib_file(kind, user))
    elif text.endswith((".pth", ".onnx")) and not Path(os.path.expanduser(text)).is_file():
        path = Path(os.path.expanduser(text))
        out.append((path.name, str(path.parent), FACEXLIB_ARCFACE_URL if path.name == FACEXLIB_ARCFACE_FILE else None))
    return list(dict.fromkeys(out))


def missing_face_files_error(missing: list[tuple[str, str, Optional[str]]]) -> FaceModelsMissingError:
    """One `FaceModelsMissingError` naming every file of ``missing`` (see `missing_face_files`)."""
    name, folder, url = missing[0]
    err = FaceModelsMissingError("Face models", name, Path(folder) / name, url)
    listed = "; ".join(f"{n} -> {Path(f) / n}" + (f" (from {u})" if u else "") for n, f, u in missing)
    err.message = (f"Face model files are missing and cannot be downloaded now: {listed}. On a machine with "
                   "internet, download them and place them there, or pass the folder that holds them "
                   f"(--face-models DIR). {NONCOMMERCIAL}")
    err.args = (err.message,)
    return err
