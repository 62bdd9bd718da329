"""The app's one loaded `LynxGenerator`, reused by every job and rebuilt only when a model setting changes."""
from __future__ import annotations

import gc
import threading
from typing import Any, Callable, Optional

from .settings import ModelKey


class GeneratorCache:
    """Holds one generator for a `ModelKey` (variant, LoRAs, memory options).

    Args:
        load: ``load(key) -> LynxGenerator``; called once per distinct key in a row, never concurrently.
    """

    def __init__(self, load: Callable[[ModelKey], Any]):
        self._load = load
        self._lock = threading.Lock()
        self.key: Optional[ModelKey] = None
        self.generator: Any = None
        self.loads = 0

    def get(self, key: ModelKey, on_load: Optional[Callable[[ModelKey], None]] = None):
        """The generator for ``key``: the loaded one if its key matches, else the old one is released first
        (a 14B model is not held twice) and ``key``'s is loaded (``on_load(key)`` is called before). If that load
        fails, the previous key's generator is loaded again and the error is raised."""
        with self._lock:
            if self.generator is not None and key == self.key:
                return self.generator
            if on_load is not None:
                on_load(key)
            previous = self.key
            self.generator, self.key = None, None
            _release_memory()
            try:
                self.generator = self._load(key)
            except BaseException:
                if previous is not None:  # keep the app usable: bring the last working models back
                    self.generator, self.key = self._load(previous), previous
                raise
            self.key = key
            self.loads += 1
            return self.generator

    @property
    def face_analyzer(self):
        """The loaded generator's `FaceAnalyzer` (the one its jobs use), for the face preview."""
        if self.generator is None or self.generator.face is None:
            raise RuntimeError("No generator is loaded yet; the app loads one before it starts serving.")
        return self.generator.face

    @property
    def num_blocks(self) -> Optional[int]:
        """Blocks of the loaded DiT (the same for every key: the base model does not change)."""
        return None if self.generator is None else len(self.generator.pipe.dit.blocks)


def _release_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
