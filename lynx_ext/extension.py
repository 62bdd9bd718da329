"""The registered extension object and extension discovery.

Entry-point group ``diffsynth.extensions``, name ``lynx`` -> `LynxExtension`. Importing this module is cheap
(no torch, no DiffSynth): heavy code loads inside the methods. Activation is opt-in by name: installing the
package changes nothing until ``install`` is called (CLI: ``--extension lynx``).
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

ENTRY_POINT_GROUP = "diffsynth.extensions"


@runtime_checkable
class DiffSynthExtension(Protocol):
    """What a ``diffsynth.extensions`` entry point provides.

    ``commands`` maps each ``diffsynth-ext`` subcommand the extension implements to the ``"module:function"``
    that runs it (``function(argv) -> exit code``); the ``diffsynth-ext`` front end imports it only when the
    command is run, so the extension object never imports its command line.
    """

    name: str
    pipeline: str
    description: str
    commands: Mapping[str, str]

    def install(self, pipe, *args, **options) -> Any: ...

    def set_scales(self, pipe, **scales) -> None: ...

    def uninstall(self, pipe) -> Any: ...


class LynxExtension:
    """Lynx (ByteDance, arXiv 2509.15496) for DiffSynth's `WanVideoPipeline`."""

    name = "lynx"
    pipeline = "WanVideoPipeline"
    description = "Identity-preserving personalized video from one face photo (ID- and Ref-adapters on Wan2.1)."
    commands = {
        "generate": "lynx_ext.cli.generate:main",
        "prepare": "lynx_ext.cli.prepare:main",
        "fit": "lynx_ext.cli.fit:main",
        "convert": "lynx_ext.cli.convert:main",
        "eval": "lynx_ext.cli.eval:main",
        "app": "lynx_ext.cli.app:main",
    }

    def install(
        self,
        pipe,
        adapters=None,
        *,
        variant: Optional[str] = None,
        id_scale: Optional[float] = None,
        ref_scale: Optional[float] = None,
        blocks: Optional[Sequence[int]] = None,
        step_window: Optional[Sequence[float]] = None,
        face_analyzer=None,
        init: str = "zero",
        config=None,
    ):
        """Install into ``pipe``. ``adapters``: `LynxAdapters`, a path (our file / official folder / ``hub:full``),
        or None to create fresh adapters (``config`` or the official layout of ``variant`` for this DiT).
        Unset scales take the variant's defaults (see `lynx_ext.pipeline.install`)."""
        from .adapters import LynxAdapterConfig, LynxAdapters, load_lynx_adapters
        from .adapters.formats.loader import dit_shape
        from .pipeline import install

        if adapters is None:
            dim, n = dit_shape(pipe.dit)
            if config is None:
                config = LynxAdapterConfig.official(variant or "full", dim=dim, num_blocks=n)
            adapters = LynxAdapters(config, init=init)
        elif not isinstance(adapters, LynxAdapters):
            adapters = load_lynx_adapters(adapters, pipe.dit, variant=variant)
        return install(pipe, adapters, id_scale=id_scale, ref_scale=ref_scale, blocks=blocks,
                       step_window=step_window, face_analyzer=face_analyzer)

    def set_scales(self, pipe, **scales) -> None:
        """`lynx_ext.pipeline.set_scales`: ``id_scale``, ``ref_scale``, ``blocks``, ``step_window``."""
        from .pipeline import set_scales

        set_scales(pipe, **scales)

    def uninstall(self, pipe):
        from .pipeline import uninstall

        return uninstall(pipe)


def load_extensions() -> dict[str, DiffSynthExtension]:
    """Every installed extension, by entry-point name (loading an entry point imports only its module)."""
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        found[ep.name] = obj() if isinstance(obj, type) else obj
    return found


def get_extension(name: str) -> DiffSynthExtension:
    """The extension registered as ``name``, with a helpful error if it is not installed."""
    extensions = load_extensions()
    if name not in extensions:
        available = ", ".join(sorted(extensions)) or "none"
        raise LookupError(
            f"No DiffSynth extension named '{name}' is installed (available: {available}). "
            "Install its package (lynx-ext: `pip install -e .` in its checkout), or check the spelling."
        )
    return extensions[name]
