"""Parity with the official Lynx code: ``python -m lynx_ext.parity DIR``."""
from .runner import ParityRow, compare, format_table, run_parity

__all__ = ["run_parity", "compare", "format_table", "ParityRow"]
