"""The encoder caches of ``prepare --recipe``: prompt encodings and VAE latents written on disk, read by training
instead of the encoders (which are then never called), giving the same loss as encoding on the fly."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from test_training import base_args, cache, fit, recipe_of  # noqa: F401  (the module-scoped tiny data fixture)


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path_factory.getbasetemp() / "lynx_home"))


@pytest.fixture(scope="module")
def encoded(cache, tmp_path_factory):  # noqa: F811
    """A copy of the prepared tiny data with both caches, written by the prepare command."""
    from lynx_ext.cli.prepare import main as prepare

    folder = tmp_path_factory.mktemp("encoded") / "prepared"
    shutil.copytree(cache, folder)
    shutil.copy(recipe_of(cache), recipe_of(folder))
    dataset = cache.parent / "dataset"
    assert prepare(["--dataset", str(dataset), "--output", str(folder), "--embedder", "dlib", "--detector", "dlib",
                    "--quiet", "--recipe", str(recipe_of(cache)), "--cache-latents"]) == 0
    return folder


def rows(folder: Path) -> list[dict]:
    from lynx_ext.training.data import read_prepared

    return read_prepared(folder)


def test_prepare_writes_one_encoding_per_unique_caption_and_latents_per_row(encoded):
    from lynx_ext.training.encoding_cache import read_index

    prompts = {r["prompt"] for r in rows(encoded)} | {"", "image of a face"}  # + text dropout, reference pass
    assert len(list((encoded / "text").glob("*.safetensors"))) == len(prompts)
    assert len(list((encoded / "latents").glob("*.safetensors"))) == len(rows(encoded))
    index = read_index(encoded)
    assert index["latents"] is True and index["prompts"] == len(prompts) and index["vae"] and index["text_encoder"]
    assert index["sample"] == {"num_frames": 5, "buckets": [[64, 64], [48, 80]], "frame_stride": 1,
                               "images_only": False}
    before = {p: p.stat().st_mtime_ns for p in [*(encoded / "text").iterdir(), *(encoded / "latents").iterdir()]}
    from lynx_ext.training.data.encode import cache_encodings, recipe_inputs

    base, sample = recipe_inputs(recipe_of(encoded))
    summary = cache_encodings(encoded, base, sample, latents=True, progress=False, verbose=False)
    assert (summary.prompts_written, summary.latents_written) == (0, 0)  # resumable: nothing redone
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_training_reads_the_caches_and_never_calls_the_encoders(encoded, tmp_path, monkeypatch):
    import lynx_ext.pipeline.units as units
    import lynx_ext.training.encoding_cache as encoding_cache

    def forbidden(*_args, **_kwargs):
        raise AssertionError("an encoder was called although its output is cached")

    monkeypatch.setattr(units, "encode_prompt", forbidden)
    monkeypatch.setattr(encoding_cache, "vae_latents", forbidden)
    cli = fit(base_args(encoded, tmp_path, steps=2), run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    hits = cli.model.text_cache.hits
    assert hits["encoded"] == 0 and hits["disk"] > 0
    assert all(t.device.type == "cpu" for t in cli.model.text_cache.memory.values())
    assert (tmp_path / "adapters" / "latest" / "lynx_adapters.safetensors").is_file()


def test_cached_and_on_the_fly_give_the_same_loss(encoded, tmp_path):
    cli = fit(base_args(encoded, tmp_path), run=False)
    module, dm = cli.model, cli.datamodule
    module.configure_model()
    dm.setup()
    assert dm.dataset.latent_fingerprint is not None
    pack = [dm.dataset[i] for i in range(len(dm.dataset))]
    assert all(s["latents"] is not None and s["video"] is None for s in pack)

    def loss(sample_pack, folder):
        module.use_encoding_cache(folder)
        with torch.no_grad():
            return module.pack_loss(sample_pack, torch.Generator().manual_seed(5))

    cached = loss(pack, encoded)
    assert module.text_cache.hits["encoded"] == 0
    # The same samples (same fixed windows) decoded and encoded on the fly: latents removed, no prompt cache.
    moved = tmp_path / "latents_moved"
    shutil.move(str(encoded / "latents"), moved)
    try:
        fresh = [dm.dataset[i] for i in range(len(dm.dataset))]
        assert all(s["video"] is not None and s["latents"] is None for s in fresh)
        on_the_fly = loss(fresh, None)
        assert module.text_cache.hits["encoded"] > 0 and module.text_cache.hits["disk"] == 0
    finally:
        shutil.move(str(moved), encoded / "latents")
    assert torch.equal(cached, on_the_fly), (cached, on_the_fly)


def test_memory_holds_a_small_lru_on_the_cpu():
    from lynx_ext.training.encoding_cache import TextEncodingCache

    calls = []
    cache_ = TextEncodingCache(None, "fp", lambda text: calls.append(text) or torch.full((1, 2, 3), float(len(text))),
                               capacity=2)
    for text in ("a", "bb", "a", "ccc", "bb"):
        assert cache_.get(text)[0, 0, 0] == len(text)
    assert list(cache_.memory) == ["ccc", "bb"] and calls == ["a", "bb", "ccc", "bb"]


def test_keys_follow_the_encoder_and_the_text(encoded, tmp_path):
    from lynx_ext.training.encoding_cache import TextEncodingCache, text_key

    assert text_key("fp1", "a cat") != text_key("fp2", "a cat") != text_key("fp1", "a dog")
    other = TextEncodingCache(encoded, "another-encoder", lambda text: torch.zeros(1, 1, 1))
    with pytest.warns(UserWarning, match="not in the prompt-encoding cache"):
        other.get(rows(encoded)[0]["prompt"])
    assert other.hits["encoded"] == 1


def test_latents_of_another_vae_stop_the_run(encoded, tmp_path):
    from lynx_ext.training.module import LynxTrainingError

    copy = tmp_path / "prepared"
    shutil.copytree(encoded, copy)
    shutil.copy(recipe_of(encoded), recipe_of(copy))
    index = json.loads((copy / "encodings.json").read_text())
    index["vae"] = "0" * 32
    (copy / "encodings.json").write_text(json.dumps(index))
    with pytest.raises(LynxTrainingError, match="another VAE"):
        fit(base_args(copy, tmp_path / "run", steps=1))


def test_prepare_refuses_latents_without_a_recipe(cache, capsys):  # noqa: F811
    from lynx_ext.cli.prepare import main as prepare

    rc = prepare(["--dataset", str(cache.parent / "dataset"), "--output", str(cache), "--embedder", "dlib",
                  "--detector", "dlib", "--quiet", "--cache-latents"])
    assert rc == 2 and "--cache-latents needs --recipe" in capsys.readouterr().err
