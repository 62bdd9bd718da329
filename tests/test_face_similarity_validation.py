"""`FaceSimilarityValidation` during a real (tiny) fit: a finite similarity when the generated frames show faces, and
never a NaN in the logs when none does."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from wiring_probes import tiny_recipe_for, prepare_tiny_training_data

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny" / "tiny_cpu.yaml"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return prepare_tiny_training_data(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path_factory.getbasetemp() / "lynx_home_similarity"))


def fit_with(callback, cache, root):
    from lynx_ext.cli.fit import make_cli

    cli = make_cli(["--config", str(tiny_recipe_for(Path(cache).parent, False)), "--data.cache", str(cache), "--trainer.default_root_dir", str(root),
                    "--trainer.max_steps", "1", "--trainer.enable_progress_bar", "false"], run=False)
    cli.trainer.callbacks.append(callback)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return {k: float(v) for k, v in cli.trainer.callback_metrics.items()}


@pytest.mark.parametrize("frames_show_faces", [True, False])
def test_face_similarity_is_finite_or_not_logged(cache, tmp_path, frames_show_faces):
    from lynx_ext.callbacks import FaceSimilarityValidation
    from dataclasses import replace

    from lynx_ext.callbacks.sampling import SAMPLE_SETTINGS
    from lynx_ext.tiny.face_models import write_standin_pack

    pairs = [{"image": str(cache.parent / "dataset" / "astronaut.png"), "prompt": "an astronaut smiling"}]
    settings = replace(SAMPLE_SETTINGS, num_frames=1, height=32, width=32, num_inference_steps=1)
    # Conditioning with dlib (the tiny data's embedder). Evaluation: stand-in models that see a face in every frame,
    # or dlib, which finds none in the untrained tiny model's frames.
    evaluation = (dict(face_models=str(write_standin_pack(tmp_path / "faces")), eval_embedder="insightface",
                       eval_detector="insightface") if frames_show_faces else {})
    callback = FaceSimilarityValidation(pairs, every_n_train_steps=1, embedder="dlib", detector="dlib",
                                        settings=settings, **evaluation)
    metrics = fit_with(callback, cache, tmp_path / "run")
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    (step, sim, rate), = callback.history
    assert step == 1
    if frames_show_faces:
        assert rate == 1.0 and sim is not None and -1.0 <= sim <= 1.0
        assert metrics["val/face_similarity"] == pytest.approx(sim)
    else:
        assert rate == 0.0 and sim is None
        assert "val/face_similarity" not in metrics  # absent: never NaN, never a number standing in for it
    assert metrics["val/face_detect_rate"] == rate


def scripted(results):
    """A `FaceSimilarityValidation.score` returning the given (similarity, detection rate) results, one per
    validation (nan: no face found)."""
    results = list(results)

    def score(self, trainer, pl_module):
        return results.pop(0)

    return score


def test_no_best_checkpoint_is_named_by_a_similarity_not_measured_at_its_step(cache, tmp_path, monkeypatch,
                                                                               recwarn):
    """Faces at step 1 (similarity 0.25), none at steps 2 and 3: the only "best" checkpoint is step 1's, named by its
    own value; steps 2 and 3 write none (neither "sim-1.000" nor step 1's 0.250 under their names), and training
    goes on."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lynx_ext.callbacks import FaceSimilarityValidation
    from lynx_ext.cli.fit import make_cli

    monkeypatch.setattr(FaceSimilarityValidation, "score",
                        scripted([(0.25, 1.0), (float("nan"), 0.0), (float("nan"), 0.0)]))
    pairs = [{"image": str(cache.parent / "dataset" / "astronaut.png"), "prompt": "an astronaut smiling"}]
    validation = FaceSimilarityValidation(pairs, every_n_train_steps=1, embedder="dlib", detector="dlib")
    best = ModelCheckpoint(dirpath=str(tmp_path / "best"), monitor="val/face_similarity", mode="max", save_top_k=3,
                           every_n_train_steps=1, filename="best-step{step:07d}-sim{val/face_similarity:.3f}",
                           auto_insert_metric_name=False)
    cli = make_cli(["--config", str(tiny_recipe_for(Path(cache).parent, False)), "--data.cache", str(cache),
                    "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.max_steps", "3",
                    "--trainer.enable_progress_bar", "false", "--data.token_budget", "70"], run=False)  # 1 epoch: 3 steps
    cli.trainer.callbacks += [validation, best]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 3
    assert [(step, sim) for step, sim, _ in validation.history] == [(1, 0.25), (2, None), (3, None)]
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == ["best-step0000001-sim0.250.ckpt"]
    assert "val/face_similarity" not in cli.trainer.callback_metrics
    said = [str(w.message) for w in recwarn]
    assert any("no checkpoint is ranked by it" in m for m in said), said


@pytest.mark.parametrize("period, warns", [(3, True), (4, False), (2, False)])
def test_a_best_checkpoint_period_that_misses_the_validations_is_named(cache, period, warns, recwarn):
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import ModelCheckpoint

    from lynx_ext.callbacks import FaceSimilarityValidation

    pairs = [{"image": str(cache.parent / "dataset" / "astronaut.png"), "prompt": "an astronaut smiling"}]
    validation = FaceSimilarityValidation(pairs, every_n_train_steps=2)
    best = ModelCheckpoint(monitor="val/face_similarity", mode="max", every_n_train_steps=period)
    validation.setup(SimpleNamespace(checkpoint_callbacks=[best]), None, "fit")
    said = [str(w.message) for w in recwarn if "multiple of the validation's" in str(w.message)]
    assert bool(said) == warns, said
