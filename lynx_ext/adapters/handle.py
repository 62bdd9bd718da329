"""The link between the DiT's attention overrides and the adapter weights, kept outside the module tree."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .lynx_adapters import LynxAdapters
    from .state import LynxRuntimeState


class AdapterHandle:
    """A plain object (not an ``nn.Module``) so that holding it never adds parameters to the DiT."""

    def __init__(self, adapters: "LynxAdapters"):
        self.adapters: Optional["LynxAdapters"] = adapters

    def __deepcopy__(self, memo):
        # DiffSynth's VRAM manager deep-copies a block to run it on the computation device; the copy's attention
        # overrides must keep pointing at the one set of adapters (and their runtime state), not at a clone.
        return self

    def __copy__(self):
        return self

    @property
    def state(self) -> "LynxRuntimeState":
        return self.adapters.state
