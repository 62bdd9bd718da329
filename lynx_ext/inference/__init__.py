"""Face photo + prompt -> video: the generator API, official presets and output writers."""
from .generator import GenerationResult, LoraSpec, LynxGenerator
from ..models.presets import OFFICIAL_NEGATIVE_PROMPT, VARIANTS

__all__ = ["LynxGenerator", "GenerationResult", "LoraSpec", "VARIANTS", "OFFICIAL_NEGATIVE_PROMPT"]
