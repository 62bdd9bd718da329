"""The link between the DiT's attention overrides and the adapters, kept outside the module tree."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .forward_inputs import BRANCHES_OFF, LynxForwardInputs

if TYPE_CHECKING:
    from .lynx_adapters import LynxAdapters


class AdapterHandle:
    """A plain object (not an ``nn.Module``) so that holding it never adds parameters to the DiT.

    ``adapters`` are the weights; ``inputs`` the `LynxForwardInputs` of the current forward (replaced whole by
    `bind`, never edited field by field).
    """

    def __init__(self, adapters: "LynxAdapters"):
        self.adapters: Optional["LynxAdapters"] = adapters
        self.inputs: LynxForwardInputs = BRANCHES_OFF

    def bind(self, inputs: LynxForwardInputs) -> None:
        """Hand ``inputs`` to every attention override for the next forward (and its backward)."""
        if not isinstance(inputs, LynxForwardInputs):
            raise TypeError(f"bind() takes LynxForwardInputs, got {type(inputs).__name__}.")
        self.inputs = inputs

    def __deepcopy__(self, memo):
        # DiffSynth's VRAM manager deep-copies a block to run it on the computation device; the copy's attention
        # overrides must keep pointing at the one set of adapters and inputs, not at a clone.
        return self

    def __copy__(self):
        return self
