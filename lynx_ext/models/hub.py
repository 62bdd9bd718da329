"""Model files by name: the official adapters (``hub:full`` / ``hub:lite``, Hugging Face ``ByteDance/lynx``) and the
base model's DiffSynth model ids (``model_id:pattern``).

Files already on disk are used as they are (no network). Missing files are downloaded only when the machine is
online; offline (``HF_HUB_OFFLINE`` / ``LYNX_EXT_OFFLINE``, DiffSynth's ``DIFFSYNTH_SKIP_DOWNLOAD``, or a download
host that does not answer within seconds) the error names every missing file and the folder it belongs in, at
once, before any model loads. ``hub:full@REV`` (or ``revision=``) pins the adapters to a revision of the
repository (a commit, tag or branch); a pinned revision has its own cache folder.
"""
from __future__ import annotations

import glob
import os
import re
import socket
import threading
from pathlib import Path
from typing import Optional, Sequence

from ..errors import LynxValueError, ModelFilesMissingError
from .presets import BASE_MODELS, OFFICIAL_ADAPTER_REPO

OFFLINE_ENV = ("LYNX_EXT_OFFLINE", "HF_HUB_OFFLINE")
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


def offline_reason(source: str = "huggingface", skip_switch: bool = False) -> Optional[str]:
    """Why nothing can be downloaded from ``source`` now (None: downloads may run).

    ``skip_switch``: DiffSynth's ``DIFFSYNTH_SKIP_DOWNLOAD=True`` counts too (base-model files).
    """
    for name in OFFLINE_ENV:
        if _truthy(name):
            return f"{name}={os.environ[name]} is set"
    if skip_switch and os.environ.get("DIFFSYNTH_SKIP_DOWNLOAD", "").strip().lower() == "true":
        return "DIFFSYNTH_SKIP_DOWNLOAD=True is set"
    host, port = HOSTS.get(source, HOSTS["huggingface"])
    return unreachable(host, port)


def missing_error(missing: Sequence[tuple[str, str]], reason: str) -> ModelFilesMissingError:
    """One error naming every missing file and where it goes."""
    lines = "; ".join(f"{what} -> {folder}" for what, folder in missing)
    return ModelFilesMissingError(
        f"Model files are missing and cannot be downloaded now ({reason}). On a machine with internet, download "
        f"them and place them here: {lines}. Or pass local files (--model-paths, --adapters PATH).", list(missing))


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


def download_official_adapters(variant: str, revision: Optional[str] = None) -> Path:
    """Return the local ``lynx_{variant}/`` folder (``variant`` may be ``full@REV``), downloading it from
    ``ByteDance/lynx`` if it is not cached. Offline, the error says which files to place where."""
    variant, revision = parse_hub(variant, revision)
    folder = official_adapter_folder(variant, revision)
    missing = missing_official_adapters(variant, revision)
    if not missing:
        return folder
    reason = offline_reason("huggingface")
    if reason is not None:
        raise missing_error(missing, reason)
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=OFFICIAL_ADAPTER_REPO, allow_patterns=[f"lynx_{variant}/*"],
                          local_dir=str(folder.parent), revision=revision)
    except Exception as err:  # noqa: BLE001 - blocked, no such revision, disk full: the files are named below
        raise missing_error(missing, f"the download failed: {type(err).__name__}") from None
    still = missing_official_adapters(variant, revision)
    if still:
        raise missing_error(still, "the download finished without them")
    return folder


# ---------------------------------------------------------------------------------------------- base-model files
def diffsynth_model_root() -> Path:
    """Where DiffSynth keeps downloaded models (``DIFFSYNTH_MODEL_BASE_PATH``, default ``./models``)."""
    return Path(os.environ.get("DIFFSYNTH_MODEL_BASE_PATH") or "./models").absolute()


def download_source() -> str:
    return (os.environ.get("DIFFSYNTH_DOWNLOAD_SOURCE") or "modelscope").lower()


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
    """``[(pattern, folder)]`` of the specs with no local file (no network)."""
    out = []
    for spec in specs:
        model_id, pattern, folder, found = _local(spec)
        if not found:
            out.append((f"{pattern} of {model_id}", str(folder)))
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


def check_downloads(specs: Sequence[str], adapters=None, revision: Optional[str] = None) -> None:
    """Before anything loads: every base-model file and official adapter file this run needs is on disk or can be
    downloaded now; otherwise one error names them all."""
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
    if blocked:
        raise missing_error(blocked, "; ".join(dict.fromkeys(reasons)))
