"""The Lynx adapters: resampler, ID branch, Ref branch, and their checkpoint formats (`formats`)."""
from .config import LynxAdapterConfig, ResamplerConfig
from .formats import (
                      LynxCheckpointError,
                      detect_format,
                      load_lynx_adapters,
                      load_official_folder,
                      read_adapters,
                      save_official_folder,
                      write_adapters,
)
from .lynx_adapters import LynxAdapters
from .resampler import PerceiverResampler
from .forward_inputs import BRANCHES_OFF, LynxForwardInputs, PackedSegments

__all__ = [
    "LynxAdapterConfig", "ResamplerConfig", "LynxAdapters", "PerceiverResampler", "LynxCheckpointError",
    "LynxForwardInputs", "BRANCHES_OFF", "PackedSegments", "load_lynx_adapters", "load_official_folder",
    "save_official_folder", "detect_format", "read_adapters", "write_adapters",
]
