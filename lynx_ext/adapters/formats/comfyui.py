"""The ComfyUI-WanVideoWrapper (kijai) Lynx layout: a resampler file plus DiT-namespaced layer files.

As the wrapper reads them (``lynx/nodes.py``, ``nodes_model_loading.py``, ``lynx/modules.py``):

- the resampler file holds the official Resampler keys (``latents``, ``proj_in.*``, ``layers.{d}.…``) and is
  loaded by the *Load Lynx Resampler* node, which builds width 1280, depth 4, 20 heads of 64, 16 queries and
  takes the output width from ``proj_out.weight``;
- the layer files are merged into the DiT's state dict (*WanVideo Extra Model Select*, chainable) with keys
  ``blocks.{i}.cross_attn.ip_adapter.{to_k_ip,to_v_ip}.{weight,bias}``, ``blocks.{i}.cross_attn.ip_adapter.registers``
  and ``blocks.{i}.self_attn.ref_adapter.{to_k_ref,to_v_ref}.{weight,bias}``, ``i`` being the DiT block;
- the loader detects a full Ref-adapter by ``blocks.0.self_attn.ref_adapter.to_k_ref.weight``, a full IP-adapter
  by ``blocks.0.cross_attn.ip_adapter.registers`` (it builds 16 registers, ID width = DiT width, biases, on every
  block) and otherwise a lite one by ``blocks.0.cross_attn.ip_adapter.to_v_ip.weight`` (ID width 2048, no biases,
  RMS key norm, even blocks only). IP and Ref are detected separately, so lite IP + full Ref files mix.
- both nodes list ``ComfyUI/models/diffusion_models`` (sub-folders included); any float dtype is cast on load
  (kijai publishes the layers in fp16 and the resamplers in fp32).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import torch

from ...atomic_write import atomic_folder
from ..config import LynxAdapterConfig, ResamplerConfig, Variant
from ..lynx_adapters import LynxAdapters
from .comfyui_files import LAYER_KEY, ComfyFiles
from .detect import FormatKind, detect_format
from .errors import LynxCheckpointError
from .layout import blocks_of, check_variant, infer_config
from .ours import header_metadata, user_metadata
from .safetensors_file import cast, read_tensors, tensor_dtype_tag, write_tensors
from .signatures import config_from_metadata

LAYOUT_TAG = "comfyui"
BRANCH = {"cross_attn.ip_adapter": "id_layers", "self_attn.ref_adapter": "ref_layers"}
WRAPPER_RESAMPLER = ResamplerConfig(dim=1280, depth=4, dim_head=64, heads=20, num_queries=16, embedding_dim=512,
                                    output_dim=2048, ff_mult=4)  # output_dim is read from the file
WRAPPER_DIT_BLOCKS = {5120: 40, 3072: 30, 4096: 48, 1536: 30}  # the DiT widths the wrapper knows -> blocks
WRAPPER_REGISTERS = 16
WRAPPER_LITE_ID_DIM = 2048


def comfy_to_ours(key: str) -> Optional[str]:
    m = LAYER_KEY.match(key)
    return f"{BRANCH[m.group(2)]}.{m.group(1)}.{m.group(3)}" if m else None


def ours_to_comfy(key: str) -> str:
    branch, block, rest = key.split(".", 2)
    where = {v: k for k, v in BRANCH.items()}[branch]
    return f"blocks.{block}.{where}.{rest}"


def comfy_key_namer(key: str) -> str:
    if key.startswith("resampler."):
        return f"resampler file:{key[len('resampler.'):]}"
    return ours_to_comfy(key)


def read_comfyui(files: ComfyFiles, dim: Optional[int] = None, num_blocks: Optional[int] = None,
                 variant: Optional[Variant] = None) -> LynxAdapters:
    """Load a ComfyUI-WanVideoWrapper Lynx set (tensors keep their dtypes; the wrapper's fp16/fp32 mix is fine)."""
    source = " + ".join(str(p) for p in files.paths)
    state: dict[str, torch.Tensor] = {}
    metas = []
    for path in files.paths:
        found = detect_format(path)
        want = FormatKind.RESAMPLER if path == files.resampler else FormatKind.COMFYUI_LAYERS
        if found.kind is not want:
            raise LynxCheckpointError(f"{path} is {found.description}, not a ComfyUI Lynx "
                                      + ("resampler file." if want is FormatKind.RESAMPLER else "layer file."))
        metas.append(found.header.metadata)
        for key, value in read_tensors(path).items():
            ours = "resampler." + key if want is FormatKind.RESAMPLER else comfy_to_ours(key)
            if ours in state:
                raise LynxCheckpointError(f"{source}: key '{key}' appears in more than one file.")
            state[ours] = value
    config = config_from_metadata(metas, source)
    if config is not None and (dim not in (None, config.dim) or num_blocks not in (None, config.num_blocks)):
        config = None
    if config is not None and bool(config.ref_blocks) != bool(blocks_of(state, "ref_layers")):
        raise LynxCheckpointError(
            f"{source}: these files were written as one set {'with' if config.ref_blocks else 'without'} a Ref-layer "
            f"file (their lynx-ext metadata says so), but {'none' if config.ref_blocks else 'one'} is given; pass "
            "all the files of the set, or their folder."
        )
    if config is None:
        config = infer_config(state, source, comfy_key_namer, dim=dim, num_blocks=num_blocks)
    check_variant(config, variant, source)
    adapters = LynxAdapters.from_state(config, state, source, comfy_key_namer)
    adapters.metadata = user_metadata(metas[0])
    return adapters


def comfyui_file_names(parts: Mapping[str, Mapping[str, torch.Tensor]], v: Variant,
                       prefix: str = "lynx") -> dict[str, str]:
    """``{"resampler"|"ip"|"ref": file name}`` in kijai's naming style (variant and dtype in the name)."""
    names = {"resampler": f"{prefix}_{v}_resampler_{tensor_dtype_tag(parts['resampler'])}.safetensors",
             "ip": f"{prefix}_{v}_ip_layers_{tensor_dtype_tag(parts['ip'])}.safetensors"}
    if parts["ref"]:
        names["ref"] = f"{prefix}_full_ref_layers_{tensor_dtype_tag(parts['ref'])}.safetensors"
    return names


def comfyui_parts(sd: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Our state dict split into the resampler file and the IP / Ref layer files, in the wrapper's key names."""
    return {"resampler": {k[len("resampler."):]: v for k, v in sd.items() if k.startswith("resampler.")},
            "ip": {ours_to_comfy(k): v for k, v in sd.items() if k.startswith("id_layers.")},
            "ref": {ours_to_comfy(k): v for k, v in sd.items() if k.startswith("ref_layers.")}}


def save_comfyui(adapters: LynxAdapters, folder: str | Path, overwrite: bool = False,
                 dtype: Optional[torch.dtype] = None, metadata: Optional[Mapping] = None,
                 prefix: str = "lynx") -> list[Path]:
    """Write the resampler, IP-layer and (if any) Ref-layer files into ``folder`` (together, atomically).

    Existing files of the same names are refused unless ``overwrite``; other files in ``folder`` are left alone.
    See `wrapper_compatibility` for what the wrapper itself can load.
    """
    folder = Path(folder)
    parts = comfyui_parts(cast(adapters.state_dict(), dtype))
    names = comfyui_file_names(parts, adapters.config.variant, prefix)
    meta = {**header_metadata(adapters, metadata), "lynx_ext_layout": LAYOUT_TAG}
    with atomic_folder(folder, list(names.values()), overwrite=overwrite) as tmp:
        for part, name in names.items():
            write_tensors(tmp / name, parts[part], meta)
    return [folder / n for n in names.values()]


def wrapper_compatibility(config: LynxAdapterConfig) -> list[str]:
    """Why ComfyUI-WanVideoWrapper would not load these adapters as they are (empty: it would)."""
    problems = []
    n = config.num_blocks
    if WRAPPER_DIT_BLOCKS.get(config.dim) != n:
        problems.append(f"the wrapper knows Wan DiTs of width/blocks {WRAPPER_DIT_BLOCKS}, not {config.dim}/{n}")
    expected = ResamplerConfig(**{**WRAPPER_RESAMPLER.__dict__, "output_dim": config.resampler.output_dim})
    if config.resampler != expected:
        problems.append("its Load Lynx Resampler node builds width 1280, depth 4, 20 heads of 64, 16 queries, "
                        f"embedding 512, ff_mult 4 (these: {config.resampler})")
    if 0 not in config.id_blocks:
        problems.append("it detects IP layers by block 0's keys, which these adapters lack")
    if config.id_bias:
        if config.num_registers != WRAPPER_REGISTERS:
            problems.append(f"its full IP layers have {WRAPPER_REGISTERS} registers (these: {config.num_registers})")
        if config.id_dim != config.dim:
            problems.append(f"its full IP layers take identity tokens as wide as the DiT ({config.dim}), "
                            f"these take {config.id_dim}")
        if config.id_blocks != list(range(n)):
            problems.append("its full IP layers sit on every block")
    else:
        if config.num_registers:
            problems.append("it treats IP layers with registers as full, with biases")
        if config.id_dim != WRAPPER_LITE_ID_DIM:
            problems.append(f"its lite IP layers take {WRAPPER_LITE_ID_DIM}-wide identity tokens "
                            f"(these: {config.id_dim})")
        if config.id_blocks != list(range(0, n, 2)):
            problems.append("its lite IP layers sit on every second block (0, 2, 4, ...)")
    if (config.id_key_norm == "shared") != bool(config.num_registers):
        problems.append("it normalises IP keys with the block's norm_k only when registers are present, RMS otherwise "
                        f"(these use id_key_norm='{config.id_key_norm}')")
    if config.ref_blocks and config.ref_blocks != list(range(n)):
        problems.append("its Ref layers sit on every block")
    return problems
