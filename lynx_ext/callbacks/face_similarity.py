"""Face-similarity validation: how much the generated faces resemble the conditioning faces."""
from __future__ import annotations

from typing import Optional

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.utilities import rank_zero_warn

from ..pipeline.generation_settings import GenerationSettings
from ..training.args import FacePair
from .ema import maybe_ema
from .sampling import SAMPLE_SETTINGS, generate_pairs, pair_fields
from .validation_pairs import PairedCallback


class FaceSimilarityValidation(PairedCallback, pl.Callback):
    """Every ``every_n_train_steps``: generate each pair, embed the largest face of every frame with the
    *evaluation* embedder and log ``val/face_similarity`` (mean cosine to the conditioning face; not logged, with a
    warning, when no frame shows a face) and ``val/face_detect_rate``.

    Args:
        pairs: held-out ``[{image, prompt}, ...]``.
        pairs_file: instead of ``pairs``, a YAML/CSV file of them (`load_pairs`; read when the run starts).
        every_n_train_steps: validation period.
        face_models: folder of face model files (see docs/faces.md).
        embedder: the conditioning embedder (as the data was prepared).
        detector: the conditioning face detector.
        eval_embedder: the evaluation embedder (default: ``embedder``).
        eval_detector: the evaluation detector (default: ``detector``).
        settings: frames, size, steps, guidance of the generations.
    """

    def __init__(self, pairs: Optional[list[FacePair]] = None, pairs_file: Optional[str] = None,
                 every_n_train_steps: int = 500, face_models: Optional[str] = None,
                 embedder: str = "facexlib", detector: str = "insightface", eval_embedder: Optional[str] = None,
                 eval_detector: Optional[str] = None, settings: GenerationSettings = SAMPLE_SETTINGS):
        self.init_pairs(pairs, pairs_file)
        self.every, self.settings = int(every_n_train_steps), settings
        self.face_models, self.embedder, self.detector = face_models, embedder, detector
        self.eval_embedder, self.eval_detector = eval_embedder or embedder, eval_detector or detector
        self._cond = self._eval = None
        self.history: list[tuple[int, Optional[float], float]] = []  # (step, similarity or None, detect rate)

    def score(self, trainer, pl_module) -> tuple[float, float]:
        """Generate and score the pairs (this process only); returns (mean similarity or nan, detection rate)."""
        from ..conditioners import FaceAnalyzer
        from ..conditioners.similarity import frame_similarities

        device = "cuda" if str(pl_module.device).startswith("cuda") else "cpu"
        if self._cond is None:
            self._cond = FaceAnalyzer.from_options(models=self.face_models, embedder=self.embedder,
                                                   detector=self.detector, device=device)
            same = (self.eval_embedder, self.eval_detector) == (self.embedder, self.detector)
            self._eval = self._cond if same else FaceAnalyzer.from_options(
                models=self.face_models, embedder=self.eval_embedder, detector=self.eval_detector, device=device)
        with maybe_ema(trainer, pl_module):
            results = generate_pairs(pl_module, self.pairs, self._cond, self.settings)
        values = []
        for pair, (_, frames) in zip(self.pairs, results):
            reference = self._eval.analyze(pair_fields(pair)[0]).embedding
            values += frame_similarities(self._eval, frames, reference)
        found = [v for v in values if v is not None]
        rate = len(found) / max(len(values), 1)
        return (float(np.mean(found)) if found else float("nan")), rate  # nan: broadcast-safe "no face"

    def evaluate(self, trainer, pl_module) -> tuple[Optional[float], float]:
        """Score on rank 0, share the result with every rank and log it; returns (similarity or None when no frame
        shows a face, detection rate).

        Every rank gets the values, so a ``ModelCheckpoint(monitor="val/face_similarity")`` decides the same way
        on all of them. A validation that finds no face in any frame logs no similarity to the logger; for
        checkpoint selection it counts as -1 (the lowest cosine), never as the previous value.
        """
        result = self.score(trainer, pl_module) if trainer.is_global_zero else None
        sim, rate = trainer.strategy.broadcast(result, src=0)
        found = sim == sim  # not nan
        pl_module.log("val/face_similarity", sim if found else -1.0, logger=False)
        pl_module.log("val/face_detect_rate", rate, logger=False)
        if trainer.logger is not None and trainer.is_global_zero:  # at this step, whatever log_every_n_steps says
            metrics = {"val/face_detect_rate": rate, **({"val/face_similarity": sim} if found else {})}
            trainer.logger.log_metrics(metrics, step=trainer.global_step)
        if not found:
            rank_zero_warn(f"FaceSimilarityValidation: no face found in the generated frames at step "
                           f"{trainer.global_step}; val/face_similarity is not logged this time.")
        sim = sim if found else None
        self.history.append((trainer.global_step, sim, rate))
        return sim, rate

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step % self.every == 0:
            self.evaluate(trainer, pl_module)
