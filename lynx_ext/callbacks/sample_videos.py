"""Sample videos for a fixed set of (face, prompt) pairs during training."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning.pytorch as pl

from ..pipeline.generation_settings import GenerationSettings
from .ema import maybe_ema
from .sampling import SAMPLE_SETTINGS, generate_pairs
from ..training.args import FacePair
from .validation_pairs import PairedCallback


class SampleVideos(PairedCallback, pl.Callback):
    """Every ``every_n_train_steps`` (and at the end) write a contact sheet per pair to
    ``<root>/samples/step-N/pair-K.png`` (EMA weights when available) and log it to TensorBoard if used.

    Args:
        pairs: ``[{image, prompt}, ...]``.
        pairs_file: instead of ``pairs``, a YAML/CSV file of them (`load_pairs`; read when the run starts).
        every_n_train_steps: sampling period (and once at the end).
        face_models: folder of face model files (see docs/faces.md).
        embedder: the embedder of the sample faces — the one the training data was prepared with.
        detector: the face detector.
        settings: frames, size, steps, guidance of the samples.
        dirpath: output folder (default ``<root>/samples``).
    """

    def __init__(self, pairs: Optional[list[FacePair]] = None, pairs_file: Optional[str] = None,
                 every_n_train_steps: int = 500, face_models: Optional[str] = None,
                 embedder: str = "facexlib", detector: str = "insightface",
                 settings: GenerationSettings = SAMPLE_SETTINGS, dirpath: Optional[str] = None):
        self.init_pairs(pairs, pairs_file)
        self.every = int(every_n_train_steps)
        self.face_models, self.embedder, self.detector = face_models, embedder, detector
        self.settings, self.dirpath = settings, dirpath
        self._analyzer = None
        self.written: list[Path] = []

    def analyzer(self, device: str):
        if self._analyzer is None:
            from ..conditioners import FaceAnalyzer

            self._analyzer = FaceAnalyzer.from_options(models=self.face_models, embedder=self.embedder,
                                                       detector=self.detector, device=device)
        return self._analyzer

    def run(self, trainer, pl_module) -> list[Path]:
        from ..outputs import contact_sheet, write_image

        folder = Path(self.dirpath or Path(trainer.default_root_dir) / "samples") / f"step-{trainer.global_step:07d}"
        device = "cuda" if str(pl_module.device).startswith("cuda") else "cpu"
        with maybe_ema(trainer, pl_module):
            results = generate_pairs(pl_module, self.pairs, self.analyzer(device), self.settings)
        paths = []
        for k, (face, frames) in enumerate(results):
            sheet = contact_sheet(frames, face=face.analysis.aligned_112, thumb_width=128)
            paths.append(write_image(sheet, folder / f"pair-{k}.png", overwrite=True))
            logger = trainer.logger
            if logger is not None and hasattr(getattr(logger, "experiment", None), "add_image"):
                import numpy as np

                logger.experiment.add_image(f"samples/pair-{k}", np.asarray(sheet), trainer.global_step,
                                            dataformats="HWC")
        self.written += paths
        return paths

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step % self.every == 0 and trainer.is_global_zero:
            self.run(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        done = self.written and self.written[-1].parent.name == f"step-{trainer.global_step:07d}"
        if trainer.is_global_zero and not done:  # not twice for the last step
            self.run(trainer, pl_module)
