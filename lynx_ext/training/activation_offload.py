"""Checkpointed block inputs kept in pinned host memory (``model.gradient_checkpointing: offload``).

With gradient checkpointing each DiT block keeps only its inputs for the backward, but at 81 x 480 x 832 these
are 40 x 32,760 tokens x 5,120 x 2 bytes = 12.5 GiB. `BlockInputOffload` is a pair of saved-tensor hooks put
around the checkpointed call: the checkpoint's saved inputs (large CUDA tensors only) are copied to page-locked
host memory on a side stream while the next block computes, and copied back when the backward recomputes the
block. The values are the same bits, so training is unchanged (a test checks gradients bit-equal).

Why not the host's own offload (``gradient_checkpoint_forward(..., use_gradient_checkpointing_offload=True)``,
torch's ``save_on_cpu()``): it copies into pageable memory, which blocks the host thread for every block.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch

MIN_BYTES = 1 << 20  # smaller saved tensors (timestep modulation, text) stay where they are


class BlockInputOffload:
    """Saved-tensor hooks moving large CUDA tensors to pinned host memory (see the module docstring)."""

    def __init__(self, min_bytes: int = MIN_BYTES):
        self.min_bytes = int(min_bytes)
        self._streams: dict[torch.device, torch.cuda.Stream] = {}

    def _stream(self, device: torch.device) -> torch.cuda.Stream:
        if device not in self._streams:
            self._streams[device] = torch.cuda.Stream(device)
        return self._streams[device]

    def pack(self, tensor: torch.Tensor):
        if not tensor.is_cuda or tensor.nbytes < self.min_bytes:
            return tensor
        side = self._stream(tensor.device)
        host = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=True)
        side.wait_stream(torch.cuda.current_stream(tensor.device))  # the tensor is written
        with torch.cuda.stream(side):
            host.copy_(tensor, non_blocking=True)
        tensor.record_stream(side)  # its memory is not reused before the copy has read it
        done = torch.cuda.Event()
        done.record(side)
        return tensor.device, host, done

    @staticmethod
    def unpack(packed):
        if isinstance(packed, torch.Tensor):
            return packed
        device, host, done = packed
        torch.cuda.current_stream(device).wait_event(done)  # the copy to the host has finished
        return host.to(device, non_blocking=True)

    def hooks(self):
        """The context manager to put around one checkpointed call."""
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


def offload_context(offload: Optional[BlockInputOffload]):
    """``offload.hooks()``, or a context that does nothing."""
    return offload.hooks() if offload is not None else contextlib.nullcontext()
