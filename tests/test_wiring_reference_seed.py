"""The reference latent is drawn as the official code draws it (lynx_spec.md §2.5): a *sample* of the VAE posterior,
``eps`` from a CPU ``torch.Generator().manual_seed(seed + 1)``, the same ``eps`` for the face and the grey (dropped)
image, checked against an independent computation from the VAE's mean and log-variance."""
from __future__ import annotations

import pytest
import torch
from conftest import GEN, random_adapters
from wiring_probes import WiringProbe, close, face_image, official_reference_latent, which

from lynx_ext.conditioners.vae_sample import sample_reference_latent
from lynx_ext.pipeline import install

EMB = torch.nn.functional.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(7)), dim=-1)


def test_sample_reference_latent_is_the_official_sample(tiny_pipe):
    vae, image = tiny_pipe.vae, face_image()
    for seed in (0, 43):
        for drop in (False, True):
            ours = sample_reference_latent(vae, image, seed, "cpu", torch.float32, drop=drop)
            assert close(ours, official_reference_latent(vae, image, seed, drop=drop)), (seed, drop)
    mean = vae.encode([image_tensor(image)], device="cpu", tiled=False)
    sample = sample_reference_latent(vae, image, 0, "cpu", torch.float32)
    assert not close(sample, mean, 1e-3), "the reference latent is the posterior mean, not a sample"
    assert not close(sample, sample_reference_latent(vae, image, 1, "cpu", torch.float32), 1e-3)


def image_tensor(image):
    import numpy as np

    return (torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255 * 2 - 1)[:, None]


def reference_pass_latents(probe, pipe) -> list:
    records = probe.outside()
    assert records and all(r.is_reference_pass(pipe.dit) for r in records)
    return [r.latents[0] for r in records]


@pytest.mark.parametrize("ref_seed", [None, 11])
def test_pipeline_draws_the_reference_with_seed_plus_one(tiny_pipe, ref_seed):
    install(tiny_pipe, random_adapters(tiny_pipe.dit, "full"))
    image = face_image()
    with WiringProbe(tiny_pipe, keep_attn_inputs=False) as probe:
        tiny_pipe(**dict(GEN, num_inference_steps=1), lynx_id_embeds=EMB, lynx_ref_image=image, cfg_scale=5.0,
                  lynx_ref_seed=ref_seed)
    seed = GEN["seed"] + 1 if ref_seed is None else ref_seed
    expected = {"face": official_reference_latent(tiny_pipe.vae, image, seed),
                "grey": official_reference_latent(tiny_pipe.vae, image, seed, drop=True)}
    labels = sorted(which(x, expected) for x in reference_pass_latents(probe, tiny_pipe))
    assert labels == ["face", "grey"], labels


def test_generator_draws_the_reference_with_seed_plus_one(tmp_path):
    from lynx_ext.inference.tiny_preset import tiny_generator

    gen = tiny_generator("full", home=tmp_path, embedder="insightface")  # the stand-in: a box on the synthetic face
    photo = face_image(160, seed=2)
    crop = gen.face.analyze(photo).ref_crop
    with WiringProbe(gen.pipe, keep_attn_inputs=False) as probe:
        gen.generate(photo, "a woman smiling", seed=5, num_frames=1, height=32, width=32, num_inference_steps=1,
                     face_similarity=False, progress=False)
    expected = {"face": official_reference_latent(gen.pipe.vae, crop, 6),
                "grey": official_reference_latent(gen.pipe.vae, crop, 6, drop=True)}
    labels = sorted(which(x, expected) for x in reference_pass_latents(probe, gen.pipe))
    assert labels == ["face", "grey"], labels
