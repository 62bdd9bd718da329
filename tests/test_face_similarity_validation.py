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
        assert metrics["val/face_similarity"] == -1.0  # the lowest cosine, for checkpoint ranking only; never NaN
    assert metrics["val/face_detect_rate"] == rate
