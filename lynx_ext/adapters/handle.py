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

    @property
    def state(self) -> "LynxRuntimeState":
        return self.adapters.state
