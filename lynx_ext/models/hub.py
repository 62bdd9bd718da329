"""Model hubs and model files by name: ModelScope (DiffSynth's default source) or the Hugging Face hub, the official
Lynx adapters (``hub:full`` / ``hub:lite``, ``ByteDance/lynx``) and the base model's DiffSynth model ids.

The source follows the host's convention: ``DIFFSYNTH_DOWNLOAD_SOURCE`` (``modelscope`` or ``huggingface``),
ModelScope when unset; ``--download-source`` sets that variable for one command. A download tries the configured
source first, then the other. Files already on disk are used as they are (no network). ``LYNX_EXT_OFFLINE=1``,
``HF_HUB_OFFLINE=1`` or ``DIFFSYNTH_SKIP_DOWNLOAD=true`` turn downloads off, and a host that does not answer within
seconds counts as offline: the error then names every missing file and the folder it belongs in, at once, before
any model loads. ``hub:full@REV`` (or ``revision=``) pins the adapters to a revision of the Hugging Face repository
(a commit, tag or branch); a pinned revision has its own cache folder.
"""
from __future__ import annotations

import functools
import glob
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from ..errors import LynxValueError, ModelFilesMissingError
from .presets import BASE_MODELS, OFFICIAL_ADAPTER_REPO

SOURCES = ("modelscope", "huggingface")
SOURCE_ENV = "DIFFSYNTH_DOWNLOAD_SOURCE"  # the host's variable (DiffSynth `ModelConfig.parse_download_source`)
SOURCE_ALIASES = {"modelscope": "modelscope", "ms": "modelscope", "huggingface": "huggingface", "hf": "huggingface"}
REPO_URLS = {"modelscope": "https://modelscope.cn/models/{repo}", "huggingface": "https://huggingface.co/{repo}"}
OFFLINE_ENV = ("LYNX_EXT_OFFLINE", "HF_HUB_OFFLINE", "DIFFSYNTH_SKIP_DOWNLOAD")
HOSTS = {"huggingface": ("huggingface.co", 443), "modelscope": ("www.modelscope.cn", 443)}
PROBE_SECONDS = 3.0
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
ADAPTER_FILES = {"full": ("resampler.safetensors", "ip_layers.safetensors", "ref_layers.safetensors"),
                 "lite": ("resampler.safetensors", "ip_layers.safetensors")}
_PROBED: dict[tuple[str, int], Optional[str]] = {}


# ----------------------------------------------------------------------------------------------- offline detection
def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def unreachable(host: str, port: int = 443, timeout: float = PROBE_SECONDS) -> Optional[str]:
    """None if ``host:port`` accepts a connection within ``timeout`` seconds, else why not (remembered per run)."""
    key = (host, port)
    if key in _PROBED:
        return _PROBED[key]
    outcome: list[Optional[str]] = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"{host} cannot be reached: {err.strerror or type(err).__name__}")

    thread = threading.Thread(target=probe, daemon=True)  # name resolution has no timeout of its own
    thread.start()
    thread.join(timeout + 0.5)
    _PROBED[key] = outcome[0] if outcome else f"{host} did not answer within {timeout:g} s"
    return _PROBED[key]


def offline_mode(offline_ok: Optional[bool] = None) -> bool:
    """``offline_ok`` if given, else true when one of `OFFLINE_ENV` is set to 1/true/yes/on."""
    if offline_ok is not None:
        return bool(offline_ok)
    return any(_truthy(name) for name in OFFLINE_ENV)


def offline_reason(source: str = "huggingface", skip_switch: bool = True) -> Optional[str]:
    """Why nothing can be downloaded from ``source`` now (None: downloads may run): a switch of `OFFLINE_ENV`
    (``skip_switch=False`` ignores DiffSynth's own), or the host not answering."""
    for name in OFFLINE_ENV:
        if _truthy(name) and (skip_switch or name != "DIFFSYNTH_SKIP_DOWNLOAD"):
            return f"{name}={os.environ[name]} is set"
    host, port = HOSTS.get(source, HOSTS["huggingface"])
    return unreachable(host, port)


def download_source(source: Optional[str] = None) -> str:
    """``source``, else ``$DIFFSYNTH_DOWNLOAD_SOURCE``, else ``modelscope``; ``hf`` / ``ms`` are accepted too."""
    given = source if source is not None else os.environ.get(SOURCE_ENV)
    if given is None or not str(given).strip():
        return "modelscope"
    key = str(given).strip().lower().replace("-", "").replace("_", "")
    if key not in SOURCE_ALIASES:
        where = "--download-source" if source is not None else f"${SOURCE_ENV}"
        raise LynxValueError(f"{where} {given!r} is not a download source; use modelscope or huggingface.")
    return SOURCE_ALIASES[key]


def source_order(source: Optional[str] = None) -> tuple[str, ...]:
    """The configured source first, then the other one."""
    first = download_source(source)
    return (first, *[s for s in SOURCES if s != first])


# downloader(source, repo_id, allow_patterns, local_dir): fetches the matching files into local_dir/<repo path>.
Downloader = Callable[[str, str, Sequence[str], Path], None]


@dataclass(frozen=True)
class HubFolder:
    """Files in one folder of a repository published on both hubs (``repos``: source -> repository id)."""

    repos: Mapping[str, str]
    folder: str
    files: tuple[str, ...]

    def url(self, source: str) -> str:
        return REPO_URLS[source].format(repo=self.repos[source])

    def present(self, local: Path) -> bool:
        return all((local / f).is_file() for f in self.files)


def hub_snapshot(source: str, repo_id: str, allow_patterns: Sequence[str], local_dir: Path,
                 revision: Optional[str] = None) -> None:
    """The hub client's own snapshot download (``modelscope`` or ``huggingface_hub``) into ``local_dir``; a host that
    does not answer within seconds is an immediate `ConnectionError` (the clients would retry for a long time)."""
    reason = offline_reason(source)
    if reason is not None:
        raise ConnectionError(reason)
    if source == "modelscope":
        from modelscope import snapshot_download

        snapshot_download(repo_id, local_dir=str(local_dir), allow_file_pattern=list(allow_patterns),
                          **({"revision": revision} if revision else {}))
    else:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=repo_id, local_dir=str(local_dir), allow_patterns=list(allow_patterns),
                          revision=revision)


def fetch_folder(what: str, hub: HubFolder, local_dir: Path, source: Optional[str] = None,
                 downloader: Optional[Downloader] = None, offline_ok: Optional[bool] = None,
                 alternative: str = "", revision: Optional[str] = None) -> Path:
    """``local_dir / hub.folder`` holding ``hub.files``: found there, or downloaded (configured source first).

    Offline, or when every source failed, raises `ModelFilesMissingError` (a `FileNotFoundError`) naming the files, the folder to place them
    in and the repository pages; ``alternative`` is appended (e.g. which option takes a local path instead).
    """
    target = local_dir / hub.folder if hub.folder else local_dir
    if hub.present(target):
        return target
    order = source_order(source)
    failures = []
    if not offline_mode(offline_ok):
        for src in order:
            try:
                (downloader or (functools.partial(hub_snapshot, revision=revision) if revision else hub_snapshot))(
                    src, hub.repos[src], [f"{hub.folder}/*" if hub.folder else "*"], local_dir)
            except Exception as err:  # noqa: BLE001 - offline, blocked, no such repository, disk full ...
                failures.append(f"{src}: {type(err).__name__}: {_first_line(err)}")
                continue
            if hub.present(target):
                return target
            failures.append(f"{src}: the download finished without "
                            + ", ".join(f for f in hub.files if not (target / f).is_file()))
    pages = " or ".join(f"{hub.url(s)} ({hub.folder or 'the repository root'})" for s in order)
    tried = ("Downloads are off (LYNX_EXT_OFFLINE / HF_HUB_OFFLINE / DIFFSYNTH_SKIP_DOWNLOAD). " if not failures
             else "Could not download them (" + "; ".join(failures) + "). ")
    raise ModelFilesMissingError(
        f"{what}: {', '.join(hub.files)} not found in {target}. {tried}On a machine with internet, get them from "
        f"{pages} and place them in {target}." + (f" {alternative}" if alternative else ""),
        [(name, str(target)) for name in hub.files if not (target / name).is_file()])


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0][:160] + ("..." if len(text[0]) > 160 else "")) if text else "no message"


def missing_error(missing: Sequence[tuple[str, str]], reason: str) -> ModelFilesMissingError:
    """One error naming every missing file and where it goes."""
    lines = "; ".join(f"{what} -> {folder}" for what, folder in missing)
    faces = any(what.split()[0].endswith((".onnx", ".pth", ".dat")) for what, _ in missing)
    return ModelFilesMissingError(
        f"Model files are missing and cannot be downloaded now ({reason}). On a machine with internet, download "
        f"them and place them here: {lines}. Or pass local files (--model-paths, --adapters PATH"
        + (", --face-models DIR" if faces else "") + ").", list(missing))


# --------------------------------------------------------------------------------------------- official adapters
def adapter_cache_dir() -> Path:
    return Path(os.environ.get("LYNX_EXT_HOME", Path.home() / ".cache" / "lynx_ext")) / "lynx"


def parse_hub(spec: str, revision: Optional[str] = None) -> tuple[str, Optional[str]]:
    """``"hub:full@REV"`` / ``"full"`` -> ``("full", "REV" or revision)``; an unknown variant is an error."""
    text = str(spec)[4:] if str(spec).startswith("hub:") else str(spec)
    variant, _, pinned = text.partition("@")
    if variant not in ADAPTER_FILES:
        raise LynxValueError.of("adapters", f"hub:{variant} is not an official variant; use hub:full or hub:lite "
                                            "(optionally pinned: hub:full@REVISION).")
    if pinned and revision and pinned != revision:
        raise LynxValueError.of("adapters", f"pins revision {pinned} but the revision option says {revision}; "
                                            "give one of them.")
    revision = pinned or revision
    if revision is not None and not REVISION_RE.match(revision):
        raise LynxValueError.of("adapters revision", f"{revision!r} is not a commit, tag or branch name.")
    return variant, revision


def official_adapter_folder(variant: str, revision: Optional[str] = None) -> Path:
    """Where ``lynx_{variant}/`` of the official repository (at ``revision``) is cached."""
    root = adapter_cache_dir() if revision is None else adapter_cache_dir() / f"rev-{revision.replace('/', '_')}"
    return root / f"lynx_{variant}"


def missing_official_adapters(spec: str, revision: Optional[str] = None) -> list[tuple[str, str]]:
    """``[(file, folder)]`` of the official adapter files not cached yet (no network)."""
    variant, revision = parse_hub(spec, revision)
    folder = official_adapter_folder(variant, revision)
    url = f"https://huggingface.co/{OFFICIAL_ADAPTER_REPO}" + (f"/tree/{revision}" if revision else "")
    return [(f"lynx_{variant}/{name} from {url}", str(folder)) for name in ADAPTER_FILES[variant]
            if not (folder / name).is_file()]


def official_adapter_hub(variant: str) -> HubFolder:
    """Where ``lynx_{variant}/`` is published (``ByteDance/lynx``, asked on both hubs)."""
    return HubFolder(repos={s: OFFICIAL_ADAPTER_REPO for s in SOURCES}, folder=f"lynx_{variant}",
                     files=ADAPTER_FILES[variant])


def download_official_adapters(variant: str, revision: Optional[str] = None, source: Optional[str] = None,
                               downloader: Optional[Downloader] = None) -> Path:
    """Return the local ``lynx_{variant}/`` folder (``variant`` may be ``full@REV``), downloading it from
    ``ByteDance/lynx`` (configured source first) if it is not cached. Offline, the error says which files to place
    where. A pinned revision is fetched from the Hugging Face hub, where the revisions are published."""
    variant, revision = parse_hub(variant, revision)
    folder = official_adapter_folder(variant, revision)
    return fetch_folder(f"Official Lynx {variant} adapters" + (f" at revision {revision}" if revision else ""),
                        official_adapter_hub(variant), folder.parent,
                        source="huggingface" if revision else source, downloader=downloader, revision=revision,
                        alternative=f"Or give the path of that lynx_{variant}/ folder instead of hub:{variant}.")


# ---------------------------------------------------------------------------------------------- base-model files
def diffsynth_model_root() -> Path:
    """Where DiffSynth keeps downloaded models (``DIFFSYNTH_MODEL_BASE_PATH``, default ``./models``)."""
    return Path(os.environ.get("DIFFSYNTH_MODEL_BASE_PATH") or "./models").absolute()


def base_model_specs(preset: str, model_paths: Sequence[str] = (), model_id_with_origin_paths: Sequence[str] = (),
                     tokenizer_path: Optional[str] = None) -> tuple[list[str], Optional[str]]:
    """The ``model_id:pattern`` specs a base model is read from, and the tokenizer's (None when given as a path)."""
    specs = list(model_id_with_origin_paths)
    if not specs and not model_paths and preset in BASE_MODELS:
        specs = list(BASE_MODELS[preset].model_id_with_origin_paths)
    return specs, None if tokenizer_path else BASE_MODELS["wan2.1-t2v-14b"].tokenizer


def _local(spec: str) -> tuple[str, str, Path, list[str]]:
    model_id, _, pattern = spec.partition(":")
    if not model_id or not pattern:
        raise LynxValueError.of("model id", f"{spec!r} must be written model_id:file_pattern, e.g. "
                                            "Wan-AI/Wan2.1-T2V-14B:Wan2.1_VAE.pth.")
    folder = diffsynth_model_root() / model_id
    found = sorted(p for p in glob.glob(str(folder / pattern)) if not Path(p).is_dir() or os.listdir(p))
    return model_id, pattern, folder, found


def missing_model_files(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``[(what, folder)]`` of the specs with no local file (no network): the pattern, its repository and the
    repository's page on the download source."""
    out = []
    for spec in specs:
        model_id, pattern, folder, found = _local(spec)
        if not found:
            url = REPO_URLS[download_source()].format(repo=model_id)
            out.append((f"{pattern} of {model_id} from {url}", str(folder)))
    return out


def locate_model_files(specs: Sequence[str]) -> list[dict]:
    """DiffSynth `ModelConfig` keywords for each spec: ``path=`` when the files are on disk (nothing is fetched),
    else ``model_id=`` / ``origin_file_pattern=`` (DiffSynth downloads them). Offline, missing files are an error
    naming them all."""
    missing = missing_model_files(specs)
    if missing:
        reason = offline_reason(download_source(), skip_switch=True)
        if reason is not None:
            raise missing_error(missing, reason)
    located = []
    for spec in specs:
        model_id, pattern, folder, found = _local(spec)
        if found:
            located.append({"path": found[0] if len(found) == 1 else found})
        else:
            located.append({"model_id": model_id, "origin_file_pattern": pattern})
    return located


def check_downloads(specs: Sequence[str], adapters=None, revision: Optional[str] = None,
                    face_missing: Sequence[tuple[str, str, Optional[str]]] = ()) -> None:
    """Before anything loads: every base-model file, official adapter file and face model file this run needs is
    on disk or can be downloaded now; otherwise one error names them all, with their folders and sources.

    ``face_missing``: the face model files not on disk, ``(name, folder, url)`` each
    (`lynx_ext.conditioners.model_files.missing_face_files`, which sits above this module)."""
    blocked, reasons = [], []
    missing = missing_model_files(specs)
    if missing:
        reason = offline_reason(download_source(), skip_switch=True)
        if reason is not None:
            blocked, reasons = blocked + missing, reasons + [reason]
    if isinstance(adapters, str) and adapters.startswith("hub:"):
        missing = missing_official_adapters(adapters, revision)
        reason = offline_reason("huggingface") if missing else None
        if reason is not None:
            blocked, reasons = blocked + missing, reasons + [reason]
    missing = list(face_missing)
    if missing:
        reason = offline_reason("huggingface") if missing and offline_mode() else None
        if missing and (reason is not None or blocked):  # offline, or no host answers: they cannot come either
            blocked += [(f"{name}" + (f" from {url}" if url else ""), folder) for name, folder, url in missing]
            reasons += [reason] if reason else []
    if blocked:
        raise missing_error(blocked, "; ".join(dict.fromkeys(reasons)))
