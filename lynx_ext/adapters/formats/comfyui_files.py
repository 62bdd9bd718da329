"""Which safetensors files make a ComfyUI-WanVideoWrapper Lynx set, from their headers alone (no tensor is read).

A resampler file holds the official Resampler keys; a layer file holds DiT-namespaced keys
``blocks.{i}.cross_attn.ip_adapter.*`` / ``blocks.{i}.self_attn.ref_adapter.*`` (see `comfyui`, which reads and
writes the set). Below `detect` and `comfyui`: it imports neither.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .errors import LynxCheckpointError
from .safetensors_file import SafetensorsHeader

# Optional prefixes the wrapper strips from a whole state dict; files we write use bare keys.
LAYER_KEY = re.compile(r"^(?:model\.)?(?:diffusion_model\.)?blocks\.(\d+)\."
                       r"(cross_attn\.ip_adapter|self_attn\.ref_adapter)\.(.+)$")
RESAMPLER_KEY = re.compile(r"^(latents|proj_in\.|proj_out\.|norm_out\.|layers\.\d+\.)")


def is_resampler_header(header: SafetensorsHeader) -> bool:
    keys = header.tensors
    return {"latents", "proj_in.weight", "proj_out.weight"} <= set(keys) and all(RESAMPLER_KEY.match(k) for k in keys)


def is_layer_header(header: SafetensorsHeader) -> bool:
    """Every key is a DiT-namespaced Lynx key (and there is at least one)."""
    return bool(header.tensors) and all(LAYER_KEY.match(k) for k in header.tensors)


def layer_summary(header: SafetensorsHeader) -> dict:
    """What a layer file holds, from its header alone: IP/Ref blocks, ID width, biases, registers, dtype."""
    ip, ref, bias, registers, id_dim = set(), set(), False, 0, None
    for key, info in header.tensors.items():
        m = LAYER_KEY.match(key)
        (ip if m.group(2) == "cross_attn.ip_adapter" else ref).add(int(m.group(1)))
        if m.group(3) == "to_k_ip.bias":
            bias = True
        if m.group(3) == "registers":
            registers = info["shape"][1]
        if m.group(3) == "to_k_ip.weight":
            id_dim = info["shape"][1]
    return {"ip_blocks": sorted(ip), "ref_blocks": sorted(ref), "bias": bias, "registers": registers,
            "id_dim": id_dim, "dtype": header.dtype_tag()}


def describe_layers(summary: dict) -> str:
    """e.g. ``lite IP-adapter on 20 blocks + full Ref-adapter on 40 blocks, fp16``."""
    parts = []
    if summary["ip_blocks"]:
        kind = "full" if summary["bias"] else "lite"
        extra = f", {summary['registers']} registers" if summary["registers"] else ""
        parts.append(f"{kind} IP-adapter on {len(summary['ip_blocks'])} blocks (ID width {summary['id_dim']}{extra})")
    if summary["ref_blocks"]:
        parts.append(f"full Ref-adapter on {len(summary['ref_blocks'])} blocks")
    return " + ".join(parts) + f", {summary['dtype']}"


@dataclass(frozen=True)
class ComfyFiles:
    """One usable set: the resampler file and the layer files (one or two: IP, Ref, or both in one)."""

    resampler: Path
    layers: tuple[Path, ...]

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.resampler, *self.layers)


class UnpairedFiles(LynxCheckpointError):
    """Candidate ComfyUI files that do not make exactly one set: ``problem`` says why, ``todo`` what to do."""

    def __init__(self, where: str, problem: str):
        self.problem = problem
        self.todo = "List the files to use separated by commas (e.g. --adapters RESAMPLER,IP_LAYERS,REF_LAYERS)."
        super().__init__(f"{where} {problem}. {self.todo}")


def pair_files(resamplers: Mapping[Path, SafetensorsHeader], layers: Mapping[Path, SafetensorsHeader],
               where: str) -> ComfyFiles:
    """Choose one set among candidate files (the resampler whose output width fits the IP layers), or raise
    `UnpairedFiles` saying what is missing or ambiguous."""
    summaries = {p: layer_summary(h) for p, h in layers.items()}
    ip_files = [p for p, s in summaries.items() if s["ip_blocks"]]
    ref_files = [p for p, s in summaries.items() if s["ref_blocks"] and not s["ip_blocks"]]
    if not ip_files:
        raise UnpairedFiles(where, "has no ComfyUI Lynx IP-layer file (keys blocks.N.cross_attn.ip_adapter.*), "
                                   "which Lynx adapters always have")
    if len(ip_files) > 1 or len(ref_files) > 1 or (ref_files and summaries[ip_files[0]]["ref_blocks"]):
        names = ", ".join(p.name for p in sorted(ip_files + ref_files))
        raise UnpairedFiles(where, f"holds several ComfyUI Lynx layer files for the same branch ({names})")
    id_dim = summaries[ip_files[0]]["id_dim"]
    fitting = [p for p, h in resamplers.items()
               if "proj_out.weight" in h.tensors and h.shape("proj_out.weight")[0] == id_dim]
    if len(fitting) != 1:
        what = ("no resampler file" if not resamplers else
                f"no resampler whose output width is {id_dim}" if not fitting else
                f"several resamplers of output width {id_dim} ({', '.join(p.name for p in sorted(fitting))})")
        raise UnpairedFiles(where, f"has {what} for the IP layers {ip_files[0].name} (ID width {id_dim})")
    return ComfyFiles(resampler=fitting[0], layers=tuple(ip_files + ref_files))


def comfyui_candidates(paths: Sequence[Path], headers: Mapping[Path, SafetensorsHeader]):
    """Split checked safetensors headers into resampler files and layer files."""
    resamplers = {p: headers[p] for p in paths if is_resampler_header(headers[p])}
    layers = {p: headers[p] for p in paths if is_layer_header(headers[p])}
    return resamplers, layers
