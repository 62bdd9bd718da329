"""Two whole guided denoising steps of our pipeline against the official Lynx pipeline's own output.

The fixtures in ``tests/fixtures/lynx_official_step/{full,lite}`` were made by running the official
``Lynx*Infer.generate_t2v`` unchanged on tiny models (see their README). Here our installed pipeline runs from
the same inputs (seed, prompts as recorded text embeddings, the ArcFace embedding, the aligned face crop through
the same VAE weights) via ``pipe(...)`` with the official sampler, and we compare what the official run recorded:
the initial noise, the identity tokens (face and zero face), the reference latents (VAE sample with the
seed + 1 generator, face crop and grey image), every guidance branch's prediction at step 0, the combined
predictions and the latents after the first and the second UniPC step.

Tolerance (float32; the official float64 recomputation of these models moves outputs by ~2e-6):
``|ours - official| <= 1e-4 + 1e-4 * |official|`` for every tensor, ``5e-4`` absolute for guided predictions
(amplified by the guidance scales). Mutants (uncond branch handed the conditional identity tokens; ``cfg_scale_i``
applied to the wrong difference; reference seed not ``seed + 1``) must fail it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

STEP_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lynx_official_step"
ATOL = RTOL = 1e-4
GUIDED_ATOL = 5e-4
# The sampler configuration `UniPCFlowScheduler` implements; a fixture recorded with another one must not pass.
UNIPC_CONFIG = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "solver_order": 2,
                "solver_type": "bh2", "predict_x0": True, "lower_order_final": True, "final_sigmas_type": "zero",
                "num_train_timesteps": 1000, "timestep_spacing": "linspace", "thresholding": False,
                "disable_corrector": []}


class _Stop(Exception):
    pass


class _RecordedTokenizer:
    """Stands in for the host tokenizer: maps each recorded prompt to one id and its real token count."""

    def __init__(self, prompts: list[str], lengths: list[int], max_len: int):
        self.prompts, self.lengths, self.max_len = prompts, lengths, max_len

    def __call__(self, prompt, return_mask=True, add_special_tokens=True):
        if prompt not in self.prompts:
            raise KeyError(f"prompt {prompt!r} has no recorded official embedding in the fixture")
        i = self.prompts.index(prompt)
        ids = torch.zeros(1, self.max_len, dtype=torch.long)
        ids[0, 0] = i
        mask = torch.zeros(1, self.max_len, dtype=torch.long)
        mask[0, : self.lengths[i]] = 1
        return ids, mask


class _RecordedTextEncoder(torch.nn.Module):
    """Stands in for umT5: returns the official embedding of the prompt the tokenizer picked, zero-padded."""

    def __init__(self, embeds: list[torch.Tensor], max_len: int):
        super().__init__()
        self.embeds, self.max_len = embeds, max_len

    def forward(self, ids, mask):
        e = self.embeds[int(ids[0, 0])]
        out = torch.zeros(1, self.max_len, e.shape[-1])
        out[:, : e.shape[1]] = e
        return out


_VAE_CACHE: dict = {}


def _tiny_vae(config: dict, weights: Path):
    """The host's `WanVideoVAE` at the fixture's tiny size; encoder + quant conv from the fixture."""
    from diffsynth.models.wan_video_vae import VideoVAE_, WanVideoVAE

    key = (json.dumps(config, sort_keys=True), str(weights))
    if key not in _VAE_CACHE:
        vae = WanVideoVAE(z_dim=config["z_dim"])
        vae.model = VideoVAE_(dim=config["base_dim"], z_dim=config["z_dim"], dim_mult=config["dim_mult"],
                              num_res_blocks=config["num_res_blocks"], attn_scales=config["attn_scales"],
                              temperal_downsample=config["temperal_downsample"]).eval().requires_grad_(False)
        missing, unexpected = vae.model.load_state_dict(load_file(str(weights)), strict=False)
        assert not unexpected, unexpected
        # Only the encoder is on the compared path (the run stops before decoding).
        assert all(k.startswith(("decoder.", "conv2.")) for k in missing), missing
        _VAE_CACHE[key] = vae
    return _VAE_CACHE[key]


def run_ours(variant: str, mutate=None, **call_overrides) -> dict[str, torch.Tensor]:
    """Build our pipeline on the fixture's models and run ``pipe(...)`` for the recorded steps.

    All glue lives here and in the stand-ins above (the recorded text embeddings, the tiny VAE). What the official
    run recorded is observed on our side through the host DiT's ``patch_embedding`` (inputs) and ``head``
    (outputs), the Resampler's output and the sampler's ``step``; the run stops after the recorded steps.
    ``mutate(pipe)`` may break the installed pipeline first (for the mutant tests).
    """
    from diffsynth.pipelines.wan_video import WanVideoPipeline

    from lynx_ext.adapters import load_official_folder
    from lynx_ext.models.wan_diffusers import load_diffusers_wan
    from lynx_ext.pipeline import UniPCFlowScheduler, install

    folder = STEP_FIXTURES / variant
    p = json.loads((folder / "call_params.json").read_text())
    inputs = load_file(str(folder / "inputs.safetensors"))
    weights = (folder / p["weights"]).resolve()
    steps = p["steps_recorded"]
    sched = p["scheduler_config"]
    assert {k: sched[k] for k in UNIPC_CONFIG} == UNIPC_CONFIG

    dit = load_diffusers_wan(weights / "transformer.safetensors", weights / "transformer_config.json")
    pipe = WanVideoPipeline(device="cpu", torch_dtype=torch.float32)
    pipe.dit = dit
    # lite has no reference path: the VAE only sets the noise shape there, so the full fixture's one serves
    vae_folder = folder if p["vae_config"] else STEP_FIXTURES / "full"
    vae_cfg = json.loads((vae_folder / "call_params.json").read_text())["vae_config"]
    pipe.vae = _tiny_vae(vae_cfg, vae_folder / "vae_encoder.safetensors")
    prompts = [p["prompt"], p["negative_prompt"]] + ([p["ref_prompt"]] if p["ref_prompt"] else [])
    embeds = [inputs["prompt_embeds"], inputs["negative_prompt_embeds"]] + (
        [inputs["ref_prompt_embeds"]] if p["ref_prompt"] else [])
    pipe.tokenizer = _RecordedTokenizer(prompts, [e.shape[1] for e in embeds], p["max_sequence_length"])
    pipe.text_encoder = _RecordedTextEncoder(embeds, p["max_sequence_length"])
    install(pipe, load_official_folder(weights, dit.dim, len(dit.blocks)))
    if mutate is not None:
        mutate(pipe)

    seen = {"latents_in": [], "head_out": [], "id_tokens": [], "guided": [], "latents": [], "timesteps": None}
    grid = (p["num_frames"] - 1) // 4 + 1, p["height"] // 16, p["width"] // 16
    pipe.dit.patch_embedding.register_forward_pre_hook(lambda m, a: seen["latents_in"].append(a[0].clone()))
    pipe.dit.head.register_forward_hook(lambda m, a, out: seen["head_out"].append(out.clone()))
    pipe.lynx.resampler.register_forward_hook(lambda m, a, out: seen["id_tokens"].extend(out.clone().split(1)))
    step = UniPCFlowScheduler.step

    def observed_step(self, model_output, timestep, sample, **kw):
        seen["timesteps"] = self.timesteps.clone()
        seen["guided"].append(model_output.clone())
        seen["latents"].append(step(self, model_output, timestep, sample, **kw).clone())
        if len(seen["latents"]) == steps:
            raise _Stop()
        return seen["latents"][-1]

    call = dict(
        prompt=p["prompt"], negative_prompt=p["negative_prompt"], seed=p["seed"], height=p["height"],
        width=p["width"], num_frames=p["num_frames"], num_inference_steps=p["num_inference_steps"],
        cfg_scale=p["guidance_scale"], cfg_scale_i=p["guidance_scale_i"], sampler="unipc",
        sigma_shift=sched["flow_shift"], lynx_id_embeds=inputs["arcface_embed"], lynx_id_scale=p["ip_scale"],
        tiled=False, progress_bar_cmd=lambda x: x,
    )
    if p["ref_prompt"]:
        call.update(lynx_ref_image=Image.open(folder / "ref_image_aligned.png").convert("RGB"),
                    lynx_ref_prompt=p["ref_prompt"], lynx_ref_scale=p["ref_scale"])
    call.update(call_overrides)
    UniPCFlowScheduler.step = observed_step
    try:
        with torch.no_grad():
            pipe(**call)
        raise AssertionError("the pipeline finished before the recorded steps were reached")
    except _Stop:
        pass
    finally:
        UniPCFlowScheduler.step = step

    main_shape = (16, grid[0], grid[1] * 2, grid[2] * 2)
    rows = [x[i:i + 1] for x in seen["latents_in"] for i in range(x.shape[0])]
    branch_preds = [dit.unpatchify(o[i:i + 1], grid) for o in seen["head_out"]
                    if o.shape[1] == grid[0] * grid[1] * grid[2] for i in range(o.shape[0])]
    n_branches = len(branch_preds) // steps
    got = {
        "timesteps": seen["timesteps"], "latents_T": next(x for x in rows if x.shape[1:] == main_shape),
        "step0_branches": branch_preds[:n_branches], "id_tokens": seen["id_tokens"],
        "step0_noise_pred_guided": seen["guided"][0], "latents_step1": seen["latents"][0],
        "step1_noise_pred_guided": seen["guided"][1], "latents_step2": seen["latents"][1],
    }
    refs = [x for x in rows if x.shape[2] == 1]
    if refs:
        got["ref_latents"] = refs
    return got


def compare(variant: str, got: dict[str, torch.Tensor]) -> tuple[dict[str, float], dict[str, float]]:
    """(every compared tensor's max abs error, the ones outside tolerance) against the official recording."""
    want = load_file(str(STEP_FIXTURES / variant / "outputs.safetensors"))
    errors, bad = {}, {}

    def check(name, ours, official):
        atol = GUIDED_ATOL if "guided" in name else ATOL
        ours, official = ours.double(), official.double()
        if ours.shape != official.shape:
            errors[name] = bad[name] = float("inf")
            return
        diff = (ours - official).abs()
        errors[name] = float(diff.max())
        if not bool(torch.all(diff <= atol + RTOL * official.abs())):
            bad[name] = errors[name]

    if not torch.equal(got["timesteps"].to(torch.int64), want["timesteps"]):
        bad["timesteps"] = float("inf")
    for name in ("latents_T", "step0_noise_pred_guided", "latents_step1", "step1_noise_pred_guided", "latents_step2"):
        check(name, got[name], want[name])
    # Branch predictions are matched as a set, so branch order or batching on our side does not matter.
    branches = [k for k in want if k.startswith("step0_noise_pred_") and k != "step0_noise_pred_guided"]
    assert len(got["step0_branches"]) == len(branches), (len(got["step0_branches"]), branches)
    for name in branches:
        best = min(got["step0_branches"], key=lambda b: float((b.double() - want[name].double()).abs().max()))
        check(name, best, want[name])
    for name, pool in (("ref_latent_cond", "ref_latents"), ("ref_latent_grey", "ref_latents"),
                       ("id_tokens_cond", "id_tokens"), ("id_tokens_uncond", "id_tokens")):
        if name in want:
            assert got.get(pool), f"our run produced no {pool}"
            best = min(got[pool], key=lambda r: float((r.double() - want[name].double()).abs().max()))
            check(name, best, want[name])
    return errors, bad


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_two_guided_steps_match_the_official_pipeline(variant):
    errors, bad = compare(variant, run_ours(variant))
    assert not bad, f"outside tolerance: {bad}; all max abs errors: {errors}"
    expected = {"step0_noise_pred_cond", "step0_noise_pred_uncond", "id_tokens_cond", "id_tokens_uncond"} | (
        {"step0_noise_pred_i", "ref_latent_cond", "ref_latent_grey"} if variant == "full" else set())
    assert expected <= set(errors), set(errors)
    assert max(errors.values()) < 5e-5, errors


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_uncond_branch_with_conditional_identity_tokens_fails(variant):
    face = load_file(str(STEP_FIXTURES / variant / "inputs.safetensors"))["arcface_embed"]

    def uncond_gets_cond_identity(pipe):  # the zero face encodes to the conditional identity tokens
        encode = pipe.lynx.encode_identity
        pipe.lynx.encode_identity = lambda e: encode(e if bool(e.any()) else face.to(e))

    _, bad = compare(variant, run_ours(variant, mutate=uncond_gets_cond_identity))
    assert {"id_tokens_uncond", "step0_noise_pred_uncond", "latents_step1"} <= set(bad), bad
    assert "step0_noise_pred_cond" not in bad and "id_tokens_cond" not in bad, bad


def test_cfg_scale_i_on_the_wrong_difference_fails():
    # uncond + g*(i - uncond) + gi*(cond - i) instead of uncond + gi*(i - uncond) + g*(cond - i)
    p = json.loads((STEP_FIXTURES / "full" / "call_params.json").read_text())
    _, bad = compare("full", run_ours("full", cfg_scale=p["guidance_scale_i"], cfg_scale_i=p["guidance_scale"]))
    assert "step0_noise_pred_guided" in bad and "latents_step1" in bad, bad
    assert not any(k in bad for k in ("step0_noise_pred_cond", "step0_noise_pred_uncond", "step0_noise_pred_i")), bad


def test_reference_seed_other_than_seed_plus_one_fails():
    p = json.loads((STEP_FIXTURES / "full" / "call_params.json").read_text())
    _, bad = compare("full", run_ours("full", lynx_ref_seed=p["seed"]))
    assert {"ref_latent_cond", "ref_latent_grey", "step0_noise_pred_cond"} <= set(bad), bad
