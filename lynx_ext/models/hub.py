"""Model hubs: ModelScope (DiffSynth's default source) or the Hugging Face hub, and the official Lynx adapters.

The source follows the host's convention: ``DIFFSYNTH_DOWNLOAD_SOURCE`` (``modelscope`` or ``huggingface``),
ModelScope when unset; ``--download-source`` on the command line sets that variable, so the base model, the
adapters and the face models come from the same place. A download tries the configured source first, then the
other one. ``LYNX_EXT_OFFLINE=1``, ``HF_HUB_OFFLINE=1`` or ``DIFFSYNTH_SKIP_DOWNLOAD=true`` turn downloads off; a
missing file then (or after every source failed) raises `FileNotFoundError` naming the files and where to put them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from .presets import OFFICIAL_ADAPTER_REPO

SOURCES = ("modelscope", "huggingface")
SOURCE_ENV = "DIFFSYNTH_DOWNLOAD_SOURCE"  # the host's variable (DiffSynth `ModelConfig.parse_download_source`)
SOURCE_ALIASES = {"modelscope": "modelscope", "ms": "modelscope", "huggingface": "huggingface", "hf": "huggingface"}
REPO_URLS = {"modelscope": "https://modelscope.cn/models/{repo}", "huggingface": "https://huggingface.co/{repo}"}
OFFLINE_ENV = ("LYNX_EXT_OFFLINE", "HF_HUB_OFFLINE", "DIFFSYNTH_SKIP_DOWNLOAD")

# downloader(source, repo_id, allow_patterns, local_dir): fetches the matching files into local_dir/<repo path>.
Downloader = Callable[[str, str, Sequence[str], Path], None]


def offline_mode(offline_ok: Optional[bool] = None) -> bool:
    """``offline_ok`` if given, else true when one of `OFFLINE_ENV` is set to 1/true/yes/on."""
    if offline_ok is not None:
        return bool(offline_ok)
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in OFFLINE_ENV)


def download_source(source: Optional[str] = None) -> str:
    """``source``, else ``$DIFFSYNTH_DOWNLOAD_SOURCE``, else ``modelscope``; ``hf`` / ``ms`` are accepted too."""
    given = source if source is not None else os.environ.get(SOURCE_ENV)
    if given is None or not str(given).strip():
        return "modelscope"
    key = str(given).strip().lower().replace("-", "").replace("_", "")
    if key not in SOURCE_ALIASES:
        where = "--download-source" if source is not None else f"${SOURCE_ENV}"
        raise ValueError(f"{where} {given!r} is not a download source; use modelscope or huggingface.")
    return SOURCE_ALIASES[key]


def source_order(source: Optional[str] = None) -> tuple[str, ...]:
    """The configured source first, then the other one."""
    first = download_source(source)
    return (first, *[s for s in SOURCES if s != first])


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


def hub_snapshot(source: str, repo_id: str, allow_patterns: Sequence[str], local_dir: Path) -> None:
    """The hub client's own snapshot download (``modelscope`` or ``huggingface_hub``) into ``local_dir``."""
    if source == "modelscope":
        from modelscope import snapshot_download

        snapshot_download(repo_id, local_dir=str(local_dir), allow_file_pattern=list(allow_patterns))
    else:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=repo_id, local_dir=str(local_dir), allow_patterns=list(allow_patterns))


def fetch_folder(what: str, hub: HubFolder, local_dir: Path, source: Optional[str] = None,
                 downloader: Optional[Downloader] = None, offline_ok: Optional[bool] = None,
                 alternative: str = "") -> Path:
    """``local_dir / hub.folder`` holding ``hub.files``: found there, or downloaded (configured source first).

    Offline, or when every source failed, raises `FileNotFoundError` naming the files, the folder to place them
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
                (downloader or hub_snapshot)(src, hub.repos[src], [f"{hub.folder}/*" if hub.folder else "*"],
                                             local_dir)
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
    raise FileNotFoundError(
        f"{what}: {', '.join(hub.files)} not found in {target}. {tried}On a machine with internet, get them from "
        f"{pages} and place them in {target}." + (f" {alternative}" if alternative else ""))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0][:160] + ("..." if len(text[0]) > 160 else "")) if text else "no message"


# ----------------------------------------------------------------------------------- the official Lynx adapters
ADAPTER_FILES = {"full": ("resampler.safetensors", "ip_layers.safetensors", "ref_layers.safetensors"),
                 "lite": ("resampler.safetensors", "ip_layers.safetensors")}


def official_adapter_folder(variant: str) -> HubFolder:
    """Where ``lynx_{variant}/`` is published (``ByteDance/lynx`` on both hubs)."""
    if variant not in ADAPTER_FILES:
        raise ValueError(f"hub:{variant} is not an official variant; use hub:full or hub:lite.")
    return HubFolder(repos={s: OFFICIAL_ADAPTER_REPO for s in SOURCES}, folder=f"lynx_{variant}",
                     files=ADAPTER_FILES[variant])


def adapter_cache_dir() -> Path:
    """``$LYNX_EXT_HOME/lynx`` (default ``~/.cache/lynx_ext/lynx``): where ``lynx_full/`` and ``lynx_lite/`` go."""
    return Path(os.environ.get("LYNX_EXT_HOME", Path.home() / ".cache" / "lynx_ext")) / "lynx"


def download_official_adapters(variant: str, source: Optional[str] = None,
                               downloader: Optional[Downloader] = None) -> Path:
    """The local ``lynx_{variant}/`` folder, downloaded from ModelScope or the Hugging Face hub if not cached."""
    return fetch_folder(f"Official Lynx {variant} adapters", official_adapter_folder(variant), adapter_cache_dir(),
                        source=source, downloader=downloader,
                        alternative=f"Or give the path of that lynx_{variant}/ folder instead of hub:{variant}.")
