"""Kept for imports of ``lynx_ext.adapters.loading``: the loader lives in `lynx_ext.adapters.formats`."""
from .formats.loader import check_fits, dit_shape, load_lynx_adapters

__all__ = ["check_fits", "dit_shape", "load_lynx_adapters"]
