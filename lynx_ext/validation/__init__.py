"""One validation layer for every user-facing value (layer 1): the CLI, the Python API, batch files, recipes and
evaluation configs check their inputs here, before any model loads. See docs/validation.md for what is checked
where.

- `values`: whole and finite numbers in ranges, choices, text parsed into them.
- `generation`: the rules of every generation option (`GenerationSettings`, `LynxSettings`, ``set_scales``).
- `device`: a requested device must exist (never a silent CPU fallback).
- `files`: input files and folders, UTF-8 text, paths kept inside the folder they belong to, cached arrays.
- `loras`: ``PATH`` / ``PATH:ALPHA`` LoRA options (`LoraSpec`), read the same by the CLI, the app and the API.
- `models`: base-model, adapter and embedder facts read from headers, and whether they fit each other.
"""
from .device import check_device
from .files import check_input_file, check_input_folder, is_inside, read_text_file, resolve_inside
from .generation import check_blocks_fit, check_setting, parse_blocks, parse_setting
from .models import (
    AdapterFacts,
    EmbedderMismatchError,
    adapter_facts,
    base_model_shape,
    check_adapters_fit,
    check_embedder_fits,
    embedder_dim,
)
from .values import check_float, check_int, parse_float, parse_int

__all__ = [
    "check_device", "check_input_file", "check_input_folder", "is_inside", "read_text_file", "resolve_inside",
    "check_blocks_fit", "check_setting", "parse_blocks", "parse_setting", "AdapterFacts", "EmbedderMismatchError",
    "adapter_facts", "base_model_shape", "check_adapters_fit", "check_embedder_fits", "embedder_dim",
    "check_float", "check_int", "parse_float", "parse_int",
]
