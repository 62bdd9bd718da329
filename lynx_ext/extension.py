"""The registered extension object and extension discovery.

Entry-point group ``diffsynth.extensions``, name ``lynx`` -> `LynxExtension`. Importing this module is cheap
(no torch, no DiffSynth): heavy code loads inside the methods. Activation is opt-in by name: installing the
package changes nothing until ``install`` is called (CLI: ``--extension lynx``).
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Optional, Protocol, Sequence, runtime_checkable

ENTRY_POINT_GROUP = "diffsynth.extensions"


@runtime_checkable
class DiffSynthExtension(Protocol):
    """What a ``diffsynth.extensions`` entry point provides."""

    name: str
    pipeline: str

    def install(self, pipe, *args, **options) -> Any: ...

    def set_scales(self, pipe, **scales) -> None: ...

    def uninstall(self, pipe) -> Any: ...


class LynxExtension:
    """Lynx (ByteDance, arXiv 2509.15496) for DiffSynth's `WanVideoPipeline`.

    ``commands`` lists the ``diffsynth-ext`` subcommands this extension implements.
    """

    name = "lynx"
    pipeline = "WanVideoPipeline"
    description = "Identity-preserving personalized video from one face photo (ID- and Ref-adapters on Wan2.1)."
    commands = ("generate", "prepare", "fit", "app")

    def install(
        self,
        pipe,
        adapters=None,
        *,
        variant: Optional[str] = None,
        id_scale: float = 1.0,
        ref_scale: float = 1.0,
        blocks: Optional[Sequence[int]] = None,
        face_embedder=None,
        init: str = "zero",
        config=None,
    ):
        """Install into ``pipe``. ``adapters``: `LynxAdapters`, a path (our file / official folder / ``hub:full``),
        or None to create fresh adapters (``config`` or the official layout of ``variant`` for this DiT)."""
        from .adapters import LynxAdapterConfig, LynxAdapters, load_lynx_adapters
        from .adapters.loading import dit_shape
        from .pipeline import install

        if adapters is None:
            dim, n = dit_shape(pipe.dit)
            if config is None:
                config = LynxAdapterConfig.official(variant or "full", dim=dim, num_blocks=n)
            adapters = LynxAdapters(config, init=init)
        elif not isinstance(adapters, LynxAdapters):
            adapters = load_lynx_adapters(adapters, pipe.dit, variant=variant)
        return install(pipe, adapters, id_scale=id_scale, ref_scale=ref_scale, blocks=blocks,
                       face_embedder=face_embedder)

    def set_scales(self, pipe, id_scale: Optional[float] = None, ref_scale: Optional[float] = None, **kwargs) -> None:
        from .pipeline import set_scales

        set_scales(pipe, id_scale=id_scale, ref_scale=ref_scale, **kwargs)

    def uninstall(self, pipe):
        from .pipeline import uninstall

        return uninstall(pipe)

    def run_command(self, command: str, argv: list[str]) -> int:
        """Run ``diffsynth-ext <command> --extension lynx <argv>``."""
        import importlib

        if command not in self.commands:
            raise SystemExit(f"The lynx extension has no '{command}' command; it has: {', '.join(self.commands)}.")
        module = importlib.import_module(f"lynx_ext.cli.{command}")
        return module.main(argv)


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
            "Install its package (e.g. `pip install lynx-ext`), or check the spelling."
        )
    return extensions[name]
