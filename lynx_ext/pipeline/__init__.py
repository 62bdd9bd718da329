"""DiffSynth glue: install/uninstall, units, the wrapped model function, guidance, samplers and the face road."""
from .face_conditioning import EmbedderMismatchError, FaceConditioning, condition_on_face
from .forward_inputs import forward_inputs
from .guidance import LynxGuidance, combine_guidance
from .install import install, replace_adapters, set_scales, uninstall
from .installation import LynxInstallation, LynxInstallError, installation, is_installed
from .model_fn import model_fn_lynx
from .reference_pass import capture_reference_features
from .samplers import UniPCFlowScheduler
from .settings import LynxSettings

__all__ = [
    "install", "uninstall", "set_scales", "replace_adapters", "is_installed", "installation", "LynxInstallation",
    "LynxInstallError", "LynxSettings", "forward_inputs", "model_fn_lynx", "LynxGuidance", "combine_guidance",
    "capture_reference_features", "UniPCFlowScheduler", "condition_on_face", "FaceConditioning",
    "EmbedderMismatchError",
]
