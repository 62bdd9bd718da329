"""The Lynx adapters: resampler, ID branch, Ref branch, and their checkpoint formats."""
from .checkpoint_check import LynxCheckpointError
from .config import LynxAdapterConfig, ResamplerConfig
from .loading import load_lynx_adapters
from .lynx_adapters import LynxAdapters
from .official_format import load_official_folder, save_official_folder
from .resampler import PerceiverResampler
from .state import LynxRuntimeState, PackedSegments

__all__ = [
    "LynxAdapterConfig", "ResamplerConfig", "LynxAdapters", "PerceiverResampler", "LynxCheckpointError",
    "LynxRuntimeState", "PackedSegments", "load_lynx_adapters", "load_official_folder", "save_official_folder",
]
