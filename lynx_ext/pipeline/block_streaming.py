"""Block streaming: the DiT's blocks (with their Lynx adapter layers) live in pinned CPU memory, and each is copied
to the device on a side stream while the block before it computes.

DiffSynth's VRAM management onloads a layer when it is called, on the compute stream, from pageable memory (and
deep-copies wrapped modules), so a card smaller than the weights waits for every copy. Here one *unit* per block
(the block and the adapter layers it calls) moves at a time: as many units as the budget holds stay on the device
(spread evenly, so that every streamed unit has resident blocks' compute to hide behind), the others are copied
one block ahead and dropped after use. The host thread waits for the block before the previous one to finish
before it starts the next block, so it never runs ahead of the device by more than two blocks: at most three
streamed units are on the device at once (two computing, one arriving), and the memory of finished copies is
reused instead of piling up in the allocator. The host's wrapped layers are told
(``state = 2``) to use the tensors as they are, so nothing is cast or copied twice; parameter paths, LoRAs and
state dicts are untouched: between blocks every tensor points at its CPU storage again.

    streamer = enable_block_streaming(pipe, vram_limit=20)   # GiB for the whole process on the device
    ...
    disable_block_streaming(pipe)

Outputs are bit-identical to the unstreamed pipeline: the same tensors, cast the same way.
"""
from __future__ import annotations

import weakref
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from torch import nn

GIB = 1024 ** 3
#: Peak activations of one block's forward, counted in ``[tokens, dim]`` tensors of the compute dtype (the 14B
#: shape at 32,760 tokens peaks 4.3 GiB above its weights: about 14 such tensors).
ACTIVATION_TENSORS = 14
IN_FLIGHT = 3  # streamed units on the device at once: the block before, the block, the next one arriving
_ATTR = "_lynx_block_streamer"


def plan_residency(unit_bytes: Sequence[int], free_bytes: float) -> list[int]:
    """The units that stay on the device: as many as ``free_bytes`` holds (by the largest unit), spread evenly
    over the blocks so that the streamed ones sit between resident ones."""
    n = len(unit_bytes)
    size = max(unit_bytes, default=0)
    keep = n if size == 0 else int(max(0, min(n, free_bytes // size)))
    streamed = n - keep
    skip = {int((j + 0.5) * n / streamed) for j in range(streamed)} if streamed else set()
    return [i for i in range(n) if i not in skip]


@dataclass
class _Slot:
    """One parameter or buffer of a unit: where it lives between blocks and the dtype it computes in."""

    owner: nn.Module
    name: str
    is_param: bool
    storage: torch.Tensor
    dtype: torch.dtype

    def point_at(self, tensor: torch.Tensor) -> None:
        if self.is_param:
            self.owner._parameters[self.name].data = tensor
        else:
            self.owner._buffers[self.name] = tensor


@dataclass
class _Unit:
    modules: list[nn.Module]
    slots: list[_Slot]
    wrapped: list[nn.Module]  # the host's VRAM-managed modules among them (they carry ``state``)
    nbytes: int
    saved_states: list[int] = field(default_factory=list)

    def holds(self, modules: Sequence[nn.Module]) -> bool:
        return len(modules) == len(self.modules) and all(a is b for a, b in zip(modules, self.modules))


def _pin_together(slots: list[_Slot], align: int = 64, pinned: bool = True) -> None:
    """Move the slots' storage into one page-locked buffer (views into it). One allocation per unit: PyTorch's
    pinned allocator rounds every allocation up to a power of two, which per tensor would cost up to 2x the RAM."""
    sizes = [-(-s.storage.numel() * s.storage.element_size() // align) * align for s in slots]
    buffer = torch.empty(max(sum(sizes), 1), dtype=torch.uint8, pin_memory=pinned)
    offset = 0
    for slot, size in zip(slots, sizes):
        t = slot.storage
        view = buffer[offset:offset + t.numel() * t.element_size()].view(t.dtype).view(t.shape)
        view.copy_(t)
        slot.storage = view
        offset += size


class BlockStreamer:
    """Streams ``units`` (one list of modules per DiT block, the block first) to ``device``.

    ``vram_limit``: GiB the process may use on the device (None: the device's total memory). ``pin``: keep the
    CPU storage in page-locked memory (needed for copies that overlap compute; default: on CUDA). ``units_of``:
    called at the start of every forward; a unit whose modules changed (adapters swapped in or uninstalled) is
    rebuilt from them.
    """

    def __init__(self, units: Sequence[Sequence[nn.Module]], device, dtype: torch.dtype,
                 vram_limit: Optional[float] = None, pin: Optional[bool] = None,
                 activation_tensors: int = ACTIVATION_TENSORS,
                 units_of: Optional[Callable[[], Sequence[Sequence[nn.Module]]]] = None):
        self.device = torch.device(device)
        self.dtype = dtype
        self.cuda = self.device.type == "cuda"
        if vram_limit is None and self.cuda:
            vram_limit = torch.cuda.get_device_properties(self.device).total_memory / GIB
        self.vram_limit = vram_limit
        self.activation_tensors = activation_tensors
        self.pin = self.cuda if pin is None else pin
        self.units_of = units_of
        self.units = [self._unit(modules) for modules in units]
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.resident_plan: list[int] = []
        self.cache: dict[int, list[torch.Tensor]] = {}  # resident units' device tensors
        self.pending: dict[int, tuple[list[torch.Tensor], Optional[torch.cuda.Event]]] = {}
        self.copies = self.copied_bytes = 0
        self.finished: deque = deque(maxlen=2)  # events recorded after the last two blocks (CUDA)
        self.hooks = []
        for i, modules in enumerate(units):
            block = modules[0]
            self.hooks.append(block.register_forward_pre_hook(self._before(i)))
            self.hooks.append(block.register_forward_hook(self._after(i)))

    # ------------------------------------------------------------------------------------------- set-up
    def _unit(self, modules: Sequence[nn.Module]) -> _Unit:
        rest = {}  # tensor id -> the dtype it rests in: the innermost host wrapper's onload dtype (e.g. float8)
        wrapped = [m for module in modules for m in module.modules() if hasattr(m, "state") and hasattr(m, "computation")]
        for m in wrapped:  # outer wrappers first, so inner ones win
            if isinstance(m.onload_dtype, torch.dtype):
                for t in list(m.parameters()) + list(m.buffers()):
                    rest[id(t)] = m.onload_dtype
        slots, seen = [], set()
        for module in modules:
            for sub in module.modules():
                for table, is_param in ((sub._parameters, True), (sub._buffers, False)):
                    for name, tensor in table.items():
                        if tensor is None or id(tensor) in seen:
                            continue
                        seen.add(id(tensor))
                        storage = tensor.detach().to("cpu")
                        if storage.is_floating_point() and id(tensor) in rest:
                            storage = storage.to(rest[id(tensor)])
                        dtype = self.dtype if storage.is_floating_point() else storage.dtype
                        slots.append(_Slot(sub, name, is_param, storage, dtype))
        if self.pin:
            _pin_together(slots)
        for slot in slots:
            slot.point_at(slot.storage)
        nbytes = sum(s.storage.numel() * s.dtype.itemsize for s in slots)
        return _Unit(list(modules), slots, wrapped, nbytes)

    def refresh(self) -> int:
        """Rebuild the units whose modules changed (see ``units_of``); returns how many were rebuilt."""
        if self.units_of is None:
            return 0
        rebuilt = 0
        for i, modules in enumerate(self.units_of()):
            if i < len(self.units) and not self.units[i].holds(modules):
                self.cache.pop(i, None)
                self.pending.pop(i, None)
                self.units[i] = self._unit(modules)
                rebuilt += 1
        return rebuilt

    # ---------------------------------------------------------------------------------------- planning
    def plan(self, tokens: int, dim: int) -> list[int]:
        """Re-plan which units stay on the device for a forward of ``tokens`` x ``dim`` activations."""
        sizes = [u.nbytes for u in self.units]
        if self.vram_limit is None:  # a non-CUDA device without a limit: everything resident
            return self._apply_plan(list(range(len(sizes))))
        ours = sum(self.units[i].nbytes for i in self.cache) + sum(self.units[i].nbytes for i in self.pending)
        other = max(0, torch.cuda.memory_allocated(self.device) - ours) if self.cuda else 0
        activations = self.activation_tensors * tokens * dim * self.dtype.itemsize
        free = self.vram_limit * GIB - other - activations - IN_FLIGHT * max(sizes, default=0)
        return self._apply_plan(plan_residency(sizes, free))

    def _apply_plan(self, keep: list[int]) -> list[int]:
        for i in [i for i in self.cache if i not in keep]:
            del self.cache[i]
        self.resident_plan = keep
        return keep

    # -------------------------------------------------------------------------------------------- copies
    def _copy(self, i: int) -> None:
        """Start copying unit ``i`` to the device (on the side stream)."""
        unit = self.units[i]
        with torch.cuda.stream(self.stream) if self.cuda else nullcontext():
            tensors = [s.storage.to(self.device, non_blocking=True).to(s.dtype) for s in unit.slots]
            event = None
            if self.cuda:
                event = torch.cuda.Event()
                event.record(self.stream)
        self.pending[i] = (tensors, event)
        self.copies += 1
        self.copied_bytes += unit.nbytes

    def _take(self, i: int) -> list[torch.Tensor]:
        if i in self.cache:
            return self.cache[i]
        if i not in self.pending:
            self._copy(i)
        tensors, event = self.pending.pop(i)
        if event is not None:
            main = torch.cuda.current_stream(self.device)
            main.wait_event(event)
            for t in tensors:
                t.record_stream(main)
        if i in self.resident_plan:
            self.cache[i] = tensors
        return tensors

    def _next_streamed(self, i: int) -> Optional[int]:
        n = len(self.units)
        for step in range(1, n + 1):
            j = (i + step) % n
            if j not in self.cache:
                return j if j not in self.pending else None
        return None

    # --------------------------------------------------------------------------------------------- hooks
    def _before(self, i: int):
        def hook(module, args):
            if i == 0:
                self.refresh()
                if args and torch.is_tensor(args[0]) and args[0].dim() >= 2:
                    x = args[0]
                    self.plan(x.numel() // x.shape[-1], x.shape[-1])
            if len(self.finished) == 2:
                self.finished[0].synchronize()  # do not run more than two blocks ahead of the device
            unit = self.units[i]
            for slot, tensor in zip(unit.slots, self._take(i)):
                slot.point_at(tensor)
            unit.saved_states = [m.state for m in unit.wrapped]
            for m in unit.wrapped:
                m.state = 2  # the host's wrappers: use the tensors as they are (already cast, on the device)
            j = self._next_streamed(i)
            if j is not None and j != i:
                self._copy(j)
        return hook

    def _after(self, i: int):
        def hook(module, args, output):
            unit = self.units[i]
            for slot in unit.slots:
                slot.point_at(slot.storage)
            for m, state in zip(unit.wrapped, unit.saved_states):
                m.state = state
            if self.cuda:
                done = torch.cuda.Event()
                done.record(torch.cuda.current_stream(self.device))
                self.finished.append(done)
            return output
        return hook

    def remove(self) -> None:
        """Remove the hooks and free the device copies; every tensor stays on its CPU storage."""
        for h in self.hooks:
            h.remove()
        self.hooks, self.cache, self.pending = [], {}, {}
        self.finished.clear()
        for unit in self.units:
            for slot in unit.slots:
                slot.point_at(slot.storage)

    def summary(self) -> dict:
        return {"units": len(self.units), "resident": len(self.resident_plan),
                "unit_gib": round(max((u.nbytes for u in self.units), default=0) / GIB, 3),
                "copies": self.copies, "copied_gib": round(self.copied_bytes / GIB, 2)}


def block_units(pipe) -> list[list[nn.Module]]:
    """One unit per DiT block: the block, then the Lynx adapter layers it calls (when Lynx is installed)."""
    adapters = getattr(pipe, "lynx", None)
    units = []
    for i, block in enumerate(pipe.dit.blocks):
        unit = [block]
        for table in ("id_layers", "ref_layers"):
            layers = getattr(adapters, table, None) if adapters is not None else None
            if layers is not None and str(i) in layers:
                unit.append(layers[str(i)])
        units.append(unit)
    return units


def enable_block_streaming(pipe, vram_limit: Optional[float] = None, pin: Optional[bool] = None) -> BlockStreamer:
    """Stream ``pipe.dit``'s blocks (and the installed adapters' layers) to ``pipe.device`` within ``vram_limit``
    GiB (see the module docstring). Replaces an earlier streamer of the same pipeline. Adapters swapped in later
    (`replace_adapters`) are streamed with their blocks from the next forward on; after `uninstall` the blocks
    stream alone."""
    from .speed import is_compiled

    if is_compiled(pipe.dit):
        raise ValueError("Block streaming swaps the blocks' weights between calls, which compiled blocks do not "
                         "allow; use --compile without --vram-limit/--offload, or drop --compile.")
    disable_block_streaming(pipe)
    owner = weakref.ref(pipe)  # the streamer lives on the DiT; it must not keep the pipeline alive

    def units_of():
        current = owner()
        return block_units(current) if current is not None else []

    streamer = BlockStreamer(block_units(pipe), pipe.device, pipe.torch_dtype, vram_limit=vram_limit, pin=pin,
                             units_of=units_of)
    pipe.dit.__dict__[_ATTR] = streamer
    return streamer


def block_streamer(pipe) -> Optional[BlockStreamer]:
    """The pipeline's `BlockStreamer`, or None."""
    return pipe.dit.__dict__.get(_ATTR)


def disable_block_streaming(pipe) -> bool:
    """Stop streaming (weights stay in CPU memory, under the host's VRAM management). True if one was on."""
    streamer = pipe.dit.__dict__.pop(_ATTR, None)
    if streamer is None:
        return False
    streamer.remove()
    return True
