"""Training the adapters: recipes, the fit CLI, what changes, exports, resumption, packing, DDP, bad input."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from wiring_probes import prepare_tiny_training_data, tiny_recipe_for
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "recipes" / "tiny" / "tiny_cpu.yaml"
SCRIPT = str(Path(sys.executable).with_name("diffsynth-ext"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from lynx_ext.training.tiny_data import write_validation_pairs

    root = tmp_path_factory.mktemp("tiny_data")
    prepared = prepare_tiny_training_data(root)
    write_validation_pairs(root, root / "dataset")
    for generations in (True, False):
        tiny_recipe_for(root, generations)
    return prepared


def recipe_of(cache) -> Path:
    """The fast tiny recipe over ``cache`` (written by the ``cache`` fixture)."""
    return Path(cache).parent / "tiny_cpu_fast.yaml"


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path_factory.getbasetemp() / "lynx_home"))


def fit(args: list[str], run: bool = True):
    from lynx_ext.cli.fit import make_cli

    config = str(recipe_of(args[args.index("--data.cache") + 1]))
    return make_cli(["fit", "--config", config, *args] if run else ["--config", config, *args], run=run)


def base_args(cache, root, steps=2, budget=None):
    args = ["--data.cache", str(cache), "--trainer.default_root_dir", str(root), "--trainer.max_steps", str(steps),
            "--trainer.enable_progress_bar", "false"]
    if budget:
        args += ["--data.token_budget", str(budget)]
    return args


def recipes():
    """The training recipes (YAML files with a ``trainer`` section; not the eval recipes or pair files)."""
    return sorted(p for p in ROOT.glob("recipes/**/*.yaml") if "trainer" in (yaml.safe_load(p.read_text()) or {}))


@pytest.mark.parametrize("recipe", recipes(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recipe_parses_and_instantiates(recipe, tmp_path):
    from lynx_ext.cli.fit import make_cli

    config = yaml.safe_load(recipe.read_text())
    overrides = ["--config", str(recipe), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                 "--trainer.strategy", "auto", "--trainer.default_root_dir", str(tmp_path)]
    init_from = config.get("model", {}).get("adapters", {}).get("init_from")
    if "stage2" in recipe.name:
        assert init_from, f"{recipe} is a stage-2 recipe but sets no model.adapters.init_from"
    if init_from:
        fake = tmp_path / "stage1.safetensors"
        fake.write_bytes(b"")
        overrides += ["--model.adapters.init_from", str(fake)]
    cli = make_cli(overrides, run=False)
    assert cli.model.pipe is None  # nothing heavy was loaded
    assert cli.datamodule.token_budget > 0


def test_unknown_recipe_key_fails_before_loading(tmp_path, capsys):
    from lynx_ext.cli.fit import main

    bad = tmp_path / "typo.yaml"
    text = TINY.read_text().replace("    lr: 1.0e-3", "    lr: 1.0e-3\n    learnig_rate: 2.0")
    bad.write_text(text)
    rc = main(["--config", str(bad)])
    assert rc != 0
    assert "learnig_rate" in capsys.readouterr().err


def test_stage2_with_missing_stage1_export(tmp_path, cache, capsys):
    from lynx_ext.cli.fit import main

    rc = main(["--config", str(recipe_of(cache)), *base_args(cache, tmp_path), "--model.adapters.init_from",
               str(tmp_path / "stage1" / "lynx_adapters.safetensors")])
    assert rc != 0 and "run stage 1 first" in capsys.readouterr().err


def test_tiny_recipe_trains_only_the_adapters(cache, tmp_path):
    cli = fit(base_args(cache, tmp_path), run=False)
    trainer, module = cli.trainer, cli.model
    module.configure_model()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer.fit(module, datamodule=cli.datamodule)
    changed = {n for n, p in module.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and all(n.startswith("pipe.lynx.") for n in changed), sorted(changed)[:5]
    losses = [float(v) for v in trainer.logged_metrics.values()]
    assert all(torch.isfinite(torch.tensor(losses)))
    ckpt = torch.load(Path(trainer.checkpoint_callback.last_model_path), weights_only=False)
    assert ckpt["state_dict"] and all(k.startswith("pipe.lynx.") for k in ckpt["state_dict"])
    export = Path(tmp_path) / "adapters" / "latest"
    assert (export / "lynx_adapters.safetensors").is_file() and (export / "lynx_full" / "ip_layers.safetensors").is_file()


def test_lora_trains_with_the_adapters(cache, tmp_path):
    cli = fit(base_args(cache, tmp_path) + ["--model.lora_rank", "2", "--model.lora_target_modules", "q,v"], run=False)
    module = cli.model
    module.configure_model()
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    cli.trainer.fit(module, datamodule=cli.datamodule)
    changed = {n for n, p in module.named_parameters() if not torch.equal(before[n], p.detach())}
    assert any("lora_" in n for n in changed) and any(n.startswith("pipe.lynx.") for n in changed)
    assert all(n.startswith("pipe.lynx.") or "lora_" in n for n in changed)


def test_fit_cli_and_export_changes_inference(cache, tmp_path):
    from lynx_ext.cli.fit import main
    from lynx_ext.cli.generate import main as generate

    assert main(["--config", str(recipe_of(cache)), *base_args(cache, tmp_path / "run", steps=3)]) == 0
    exported = tmp_path / "run" / "adapters" / "latest" / "lynx_adapters.safetensors"
    face = cache.parent / "dataset" / "astronaut.png"
    common = ["--preset", "tiny", "--image", str(face), "--prompt", "an astronaut", "--embedder", "dlib",
              "--num-inference-steps", "2", "--num-frames", "5", "--height", "64", "--width", "64", "--quiet",
              "--no-face-similarity"]
    assert generate(common + ["--adapters", str(exported), "--output", str(tmp_path / "a.mp4")]) == 0
    # The same adapters at scale 0 are the base model: the trained ones must change the video.
    assert generate(common + ["--adapters", str(exported), "--id-scale", "0", "--ref-scale", "0",
                              "--output", str(tmp_path / "b.mp4")]) == 0
    import imageio

    a = torch.tensor(imageio.mimread(str(tmp_path / "a.mp4"))).float()
    b = torch.tensor(imageio.mimread(str(tmp_path / "b.mp4"))).float()
    assert (a - b).abs().max() > 0


def test_resume_is_exact(cache, tmp_path):
    """A run stopped after step 2 and resumed from its checkpoint runs steps 2-4 only, on the packs the
    uninterrupted run saw there, and ends with the same weights (a run that ignored the checkpoint would start at
    step 0 and run five steps)."""
    import json

    def final(root):
        return load_file(str(Path(root) / "adapters" / "latest" / "lynx_adapters.safetensors"))

    def steps_of(log):
        return [json.loads(line) for line in log.read_text().splitlines()]

    def args(root, steps, log):  # 70 tokens: 3 packs per epoch, so 5 steps cross an epoch
        return base_args(cache, root, steps=steps, budget=70) + [
            "--trainer.callbacks+=wiring_probes.StepLog", f"--trainer.callbacks.path={log}"]

    fit(args(tmp_path / "straight", 5, tmp_path / "straight.jsonl"))
    fit(args(tmp_path / "cut", 2, tmp_path / "cut.jsonl"))
    last = tmp_path / "cut" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    fit(args(tmp_path / "cut", 5, tmp_path / "resumed.jsonl") + ["--ckpt_path", str(last)])
    straight, resumed = steps_of(tmp_path / "straight.jsonl"), steps_of(tmp_path / "resumed.jsonl")
    assert [e["step"] for e in straight] == [0, 1, 2, 3, 4]
    assert [e["step"] for e in resumed] == [2, 3, 4], resumed
    assert resumed == straight[2:]
    a, b = final(tmp_path / "straight"), final(tmp_path / "cut")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_from_another_recipe_is_refused(cache, tmp_path):
    from lynx_ext.training.module import LynxTrainingError

    fit(base_args(cache, tmp_path / "one", steps=2))
    ckpt = tmp_path / "one" / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    with pytest.raises(LynxTrainingError, match="another recipe"):
        fit(base_args(cache, tmp_path / "two", steps=4) + ["--model.adapters.variant", "lite",
                                                           "--model.adapters.id_dim", "64", "--ckpt_path", str(ckpt)])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(cache, tmp_path, monkeypatch):
    from lynx_ext.training.module import LynxModule, LynxTrainingError

    real = LynxModule.pack_loss

    def poisoned(self, pack, generator=None):
        loss = real(self, pack, generator)
        return loss * float("nan") if self.global_step >= 2 else loss

    monkeypatch.setattr(LynxModule, "pack_loss", poisoned)
    with pytest.raises(LynxTrainingError, match="loss became nan at step 2"):
        fit(base_args(cache, tmp_path, steps=4) + ["--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                                                   "--trainer.callbacks.every_n_train_steps=1",
                                                   "--trainer.callbacks.save_last=true"])
    ckpts = sorted((tmp_path / "lightning_logs" / "version_0" / "checkpoints").glob("*.ckpt"))
    assert ckpts
    good = torch.load(ckpts[-1], weights_only=False)
    assert good["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in good["state_dict"].values())


def test_packed_loss_equals_one_by_one(cache):
    cli = fit(base_args(cache, "/tmp/unused"), run=False)
    module, dm = cli.model, cli.datamodule
    module.configure_model()
    dm.setup()
    pack = [dm.dataset[i] for i in range(4)]
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():  # adapters that act strongly, and an identity of its own for every sample
        for name, p in module.pipe.lynx.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if "_ip" in name else 0.1))
    for sample in pack:
        sample["id_embed"] = torch.nn.functional.normalize(torch.randn(1, len(sample["id_embed"]), generator=g),
                                                           dim=-1)[0]
    with torch.no_grad():
        packed = module.pack_loss(pack, torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        single = torch.stack([module.pack_loss([s], g) for s in pack]).mean()
        # each sample's identity matters at this tolerance: handing every sample its neighbour's changes the loss
        rotated = [dict(s, id_embed=pack[(i + 1) % len(pack)]["id_embed"]) for i, s in enumerate(pack)]
        other = module.pack_loss(rotated, torch.Generator().manual_seed(3))
    assert torch.allclose(packed, single, rtol=1e-4, atol=1e-6), (packed, single)
    assert (other - packed).abs() > 5e-4 * packed.abs(), (other, packed)  # 5x the tolerance above


def test_token_budget_packing():
    from lynx_ext.training.packing import TokenBudgetBatchSampler, latent_tokens

    counts = [latent_tokens(81, 480, 832), latent_tokens(1, 480, 832), latent_tokens(1, 480, 832),
              latent_tokens(33, 320, 576)]
    sampler = TokenBudgetBatchSampler(counts, budget=40000, seed=1)
    packs = list(sampler)
    assert sorted(i for p in packs for i in p) == [0, 1, 2, 3]
    assert all(sum(counts[i] for i in p) <= 40000 for p in packs)
    sampler.skip = 1
    assert list(sampler) == packs[1:]
    shards = [list(TokenBudgetBatchSampler(counts, 40000, seed=1, num_replicas=2, rank=r)) for r in range(2)]
    assert len(shards[0]) == len(shards[1])


@pytest.mark.slow
def test_two_process_ddp_on_cpu(cache, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([SCRIPT, "fit", "--extension", "lynx", "--config", str(recipe_of(cache)),
                           *base_args(cache, tmp_path),
                           "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "adapters" / "latest" / "lynx_adapters.safetensors").is_file()


def test_sample_video_face_similarity_and_stage_callbacks(cache, tmp_path):
    from lynx_ext.callbacks import AdapterEMA, FaceSimilarityValidation, SampleVideos, StageSchedule
    from dataclasses import replace

    from lynx_ext.callbacks.sampling import SAMPLE_SETTINGS

    face = str(cache.parent / "dataset" / "astronaut.png")
    settings = replace(SAMPLE_SETTINGS, num_frames=5, height=64, width=64, num_inference_steps=2)
    pairs = [{"image": face, "prompt": "an astronaut smiling"}]
    samples = SampleVideos(pairs, every_n_train_steps=2, embedder="dlib", detector="dlib", settings=settings)
    similarity = FaceSimilarityValidation(pairs, every_n_train_steps=2, embedder="dlib", detector="dlib",
                                          settings=settings)
    stages = StageSchedule([{"start_step": 0, "num_frames": 1}])
    cli = fit(base_args(cache, tmp_path, steps=2), run=False)
    cli.trainer.callbacks += [samples, similarity, stages]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert samples.written and all(p.is_file() and p.stat().st_size > 0 for p in samples.written)
    step, sim, rate = similarity.history[0]
    assert step == 2 and 0.0 <= rate <= 1.0
    assert cli.datamodule.sample.num_frames == 1
    ema = next(c for c in cli.trainer.callbacks if isinstance(c, AdapterEMA))
    assert ema.shadow and all(torch.isfinite(v).all() for v in ema.shadow.values())
    with pytest.raises(ValueError, match="unknown key"):
        StageSchedule([{"start_step": 0, "frames": 9}])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SampleVideos([{"image": str(tmp_path / "nope.png"), "prompt": "x"}])
    with pytest.raises(ValueError, match="not both"):
        SampleVideos(pairs, pairs_file=str(cache.parent / "validation_pairs.yaml"))



# ------------------------------------------------------------------------ loss settings, EMA, resumption
def configured(cache, *extra: str):
    """The recipe's `LynxModule` (model built) and data module (set up) with ``extra`` CLI overrides."""
    cli = fit(base_args(cache, "/tmp/unused") + list(extra), run=False)
    cli.model.configure_model()
    cli.datamodule.setup()
    return cli.model, cli.datamodule


def drawn_timesteps(module, pack, seed: int) -> tuple[torch.Tensor, list[float]]:
    """``module.pack_loss(pack)`` with a seeded generator, and the timestep each sample was noised at (read off the
    host scheduler's ``add_noise`` calls)."""
    sched, seen = module.pipe.scheduler, []
    add_noise = sched.add_noise

    def spy(latents, noise, timestep):
        seen.append(float(timestep))
        return add_noise(latents, noise, timestep)

    sched.add_noise = spy
    try:
        with torch.no_grad():
            loss = module.pack_loss(pack, torch.Generator().manual_seed(seed))
    finally:
        del sched.add_noise
    return loss, seen


def shifted(shift: float, n: int = 1000) -> torch.Tensor:
    """Wan's training timesteps for ``shift``: sigmas ``1 - k/n`` mapped by ``shift s / (1 + (shift - 1) s)``."""
    s = 1 - torch.arange(n, dtype=torch.float64) / n
    return 1000 * shift * s / (1 + (shift - 1) * s)


def test_sigma_shift_sets_the_noise_levels_drawn(cache):
    """``loss.sigma_shift`` shapes the training schedule: the timesteps (noise levels) a step draws follow it."""
    drawn = {}
    for shift in (5.0, 2.0):
        module, dm = configured(cache, "--model.loss.sigma_shift", str(shift))
        sched = module.pipe.scheduler
        assert torch.allclose(sched.timesteps.double(), shifted(shift), rtol=1e-5, atol=1e-3), shift
        _, drawn[shift] = drawn_timesteps(module, [dm.dataset[0], dm.dataset[1]], seed=3)
    # the same draws, mapped through each shift: one schedule index per sample, its shifted timestep
    for t5, t2 in zip(drawn[5.0], drawn[2.0]):
        k = int(torch.argmin((shifted(5.0) - t5).abs()))
        assert t2 == pytest.approx(float(shifted(2.0)[k]), abs=1e-2) and t2 < t5 - 1


def test_timestep_weighting_multiplies_the_mse_by_the_schedule_weight(cache):
    """With ``loss.timestep_weighting`` a sample's loss is the host scheduler's training weight at its timestep times
    its MSE; without, the plain MSE (one sample per pack, so the mean is that sample's)."""
    weighted, dm = configured(cache)
    plain, _ = configured(cache, "--model.loss.timestep_weighting", "false")
    sched = weighted.pipe.scheduler
    weights = []
    for seed in range(4):
        sample = dm.dataset[seed % len(dm.dataset)]
        loss_w, (t_w,) = drawn_timesteps(weighted, [sample], seed)
        loss_p, (t_p,) = drawn_timesteps(plain, [sample], seed)
        assert t_w == t_p
        weight = float(sched.training_weight(torch.tensor(t_w)))
        weights.append(weight)
        assert float(loss_w) == pytest.approx(weight * float(loss_p), rel=1e-5), (seed, t_w, weight)
    assert max(abs(w - 1) for w in weights) > 0.1, weights  # the weights seen are not all ~1


class WeightLog(pl.Callback):
    """The trainable weights after every optimisation step."""

    def __init__(self):
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append({n: p.detach().float().clone() for n, p in pl_module.trainable_named_parameters()})


def test_ema_weights_after_known_steps(cache, tmp_path):
    """``ema = decay * ema + (1 - decay) * weight`` after each step (copies up to ``start_step``), for the recipe's
    EMA (decay 0.9) and one that starts later; the export is the EMA."""
    from lynx_ext.callbacks import AdapterEMA

    cli = fit(base_args(cache, tmp_path, steps=4), run=False)
    recipe_ema = next(c for c in cli.trainer.callbacks if isinstance(c, AdapterEMA))
    late, log = AdapterEMA(decay=0.5, start_step=2), WeightLog()
    cli.trainer.callbacks += [late, log]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert len(log.steps) == 4 and recipe_ema.decay == 0.9

    def expected(decay, start_step):
        ema = {}
        for step, weights in enumerate(log.steps, start=1):
            for n, w in weights.items():
                d = 0.0 if step <= start_step or n not in ema else decay
                ema[n] = d * ema.get(n, w).double() + (1 - d) * w.double()
        return ema

    first, last = log.steps[0], log.steps[-1]
    assert any(not torch.equal(first[n], last[n]) for n in first)  # the weights moved
    for ema, want in ((recipe_ema, expected(0.9, 0)), (late, expected(0.5, 2))):
        assert ema.shadow.keys() == want.keys()
        for n, value in want.items():
            assert torch.allclose(ema.shadow[n].double(), value, rtol=1e-6, atol=1e-9), (ema.decay, n)
    assert any(not torch.allclose(recipe_ema.shadow[n], last[n], atol=1e-7) for n in last)  # not the plain weights
    exported = load_file(str(tmp_path / "adapters" / "latest" / "lynx_adapters.safetensors"))
    for n, value in recipe_ema.shadow.items():
        assert torch.equal(exported[n.removeprefix("pipe.lynx.")].float(), value), n
