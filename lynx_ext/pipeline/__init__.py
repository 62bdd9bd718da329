"""DiffSynth glue: install/uninstall, units, the wrapped model function, guidance and samplers."""
from .guidance import LynxGuidance, combine_guidance
from .install import LynxInstallError, install, is_installed, replace_adapters, set_scales, uninstall
from .model_fn import model_fn_lynx
from .reference_pass import capture_reference_features
from .samplers import UniPCFlowScheduler

__all__ = [
    "install", "uninstall", "set_scales", "replace_adapters", "is_installed", "LynxInstallError",
    "model_fn_lynx", "LynxGuidance", "combine_guidance", "capture_reference_features", "UniPCFlowScheduler",
]
