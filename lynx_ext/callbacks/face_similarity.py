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
from .step_metrics import forget_metrics
from .validation_pairs import PairedCallback

SIMILARITY, DETECT_RATE = "val/face_similarity", "val/face_detect_rate"


class FaceSimilarityValidation(PairedCallback, pl.Callback):
    """Every ``every_n_train_steps``: generate each pair, embed the largest face of every frame with the
    *evaluation* embedder and log ``val/face_similarity`` (mean cosine to the conditioning face; not logged, with a
    warning, when no frame shows a face) and ``val/face_detect_rate``.

    Both values belong to the step they were measured at: at any other step, and when no face was found, the
    similarity is absent, so a ``ModelCheckpoint(monitor="val/face_similarity")`` saves no "best" checkpoint then
    (never one named by an earlier step's value or by a stand-in number).

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
        checkpoint selection it is absent (no checkpoint is ranked by it at this step), never a number standing in for
        it and never the previous value.
        """
        result = self.score(trainer, pl_module) if trainer.is_global_zero else None
        sim, rate = trainer.strategy.broadcast(result, src=0)
        found = sim == sim  # not nan
        if found:  # else absent: `on_train_batch_start` dropped any earlier value
            pl_module.log(SIMILARITY, sim, logger=False)
        pl_module.log(DETECT_RATE, rate, logger=False)
        if trainer.logger is not None and trainer.is_global_zero:  # at this step, whatever log_every_n_steps says
            metrics = {DETECT_RATE: rate, **({SIMILARITY: sim} if found else {})}
            trainer.logger.log_metrics(metrics, step=trainer.global_step)
        if not found:
            rank_zero_warn(f"FaceSimilarityValidation: no face found in the generated frames at step "
                           f"{trainer.global_step}; val/face_similarity is not logged this time, and no checkpoint "
                           "is ranked by it at this step.")
        sim = sim if found else None
        self.history.append((trainer.global_step, sim, rate))
        return sim, rate

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        for cb in trainer.checkpoint_callbacks if trainer is not None else []:
            period = getattr(cb, "_every_n_train_steps", 0)
            if getattr(cb, "monitor", None) == SIMILARITY and self.every and (not period or period % self.every):
                when = f"every {period} steps" if period else "not by step"
                rank_zero_warn(f"A ModelCheckpoint monitoring {SIMILARITY} saves {when}, but FaceSimilarityValidation "
                               f"measures it every {self.every} steps: it saves a best checkpoint only at steps where "
                               "both fall; set its every_n_train_steps to a multiple of the validation's.")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        forget_metrics(trainer, [SIMILARITY, DETECT_RATE])  # measured at one step, not carried to the next

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step % self.every == 0:
            self.evaluate(trainer, pl_module)
