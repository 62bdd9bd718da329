"""The Lynx adapters: resampler, ID branch, Ref branch, and their checkpoint formats."""
from .checkpoint_check import LynxCheckpointError
from .config import LynxAdapterConfig, ResamplerConfig
from .loading import load_lynx_adapters
from .lynx_adapters import LynxAdapters
from .official_format import load_official_folder, save_official_folder
from .resampler import PerceiverResampler
from .forward_inputs import BRANCHES_OFF, LynxForwardInputs, PackedSegments

__all__ = [
    "LynxAdapterConfig", "ResamplerConfig", "LynxAdapters", "PerceiverResampler", "LynxCheckpointError",
    "LynxForwardInputs", "BRANCHES_OFF", "PackedSegments", "load_lynx_adapters", "load_official_folder", "save_official_folder",
]
