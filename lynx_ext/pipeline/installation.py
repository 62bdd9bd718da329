"""`LynxInstallation`: what `install` put into a pipeline, and `installation(pipe)`, the public way to reach it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..adapters.forward_inputs import LynxForwardInputs
from ..adapters.handle import AdapterHandle
from ..errors import LynxCompatibilityError
from .forward_inputs import forward_inputs
from .settings import LynxSettings

_ATTR = "_lynx_install"
MISSING = object()


class LynxInstallError(LynxCompatibilityError, RuntimeError):
    """The pipeline cannot take the Lynx extension (or already has it, or does not have it)."""


@dataclass
class LynxInstallation:
    """One installation of Lynx in one pipeline.

    Attributes:
        handle: the adapters and the inputs of the current forward, as the attention overrides see them.
        settings: the installed defaults (replaced whole by `set_scales`).
        host_model_fn: the model function that was ``pipe.model_fn`` before install (the host's).
        num_blocks: blocks of the DiT.
        face_analyzer: the face analyzer used when a face *image* is given to the pipeline (or None).
    """

    handle: AdapterHandle
    settings: LynxSettings
    host_model_fn: Callable
    num_blocks: int
    face_analyzer: Any = None
    original_class: type = object
    original_in_iteration_models: tuple = ()
    original_in_iteration_models_2: Any = MISSING
    units: list = field(default_factory=list)
    overridden: list = field(default_factory=list)  # (module, previous per-instance forward or MISSING)

    def forward_inputs(self, **values) -> LynxForwardInputs:
        """`lynx_ext.pipeline.forward_inputs.forward_inputs` over this installation's settings and DiT."""
        return forward_inputs(self.settings, self.num_blocks, **values)


def installation(pipe) -> LynxInstallation:
    """The `LynxInstallation` of ``pipe`` (a `LynxInstallError` if Lynx is not installed)."""
    record = pipe.__dict__.get(_ATTR)
    if record is None:
        raise LynxInstallError("Lynx is not installed on this pipeline; call install(pipe, adapters) first.")
    return record


def is_installed(pipe) -> bool:
    return pipe.__dict__.get(_ATTR) is not None
