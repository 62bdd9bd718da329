"""Parity with the official Lynx code on the golden fixtures, through `python -m lynx_ext.parity`."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from lynx_ext.parity import run_parity


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_every_fixture_output_matches(fixtures_dir, variant):
    rows = run_parity(fixtures_dir / variant)
    assert len(rows) == len(load_file(str(fixtures_dir / variant / "outputs.safetensors")))
    failed = [r for r in rows if not r.passed]
    assert not failed, failed
    assert max(r.max_abs for r in rows) < 1e-5


def test_parity_cli_exit_codes(fixtures_dir, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "lynx_ext.parity", str(fixtures_dir / "lite")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "9/9 outputs within tolerance" in ok.stdout
    # An output name no rule knows must fail loudly.
    folder = tmp_path / "lite_unknown"
    shutil.copytree(fixtures_dir / "lite", folder)
    outputs = load_file(str(folder / "outputs.safetensors"))
    outputs["noise_pred_mystery"] = torch.zeros(1)
    save_file(outputs, str(folder / "outputs.safetensors"))
    bad = subprocess.run([sys.executable, "-m", "lynx_ext.parity", str(folder)], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "unknown output name 'noise_pred_mystery'" in bad.stdout


def test_parity_detects_a_wrong_output(fixtures_dir, tmp_path):
    folder = tmp_path / "full_tampered"
    shutil.copytree(fixtures_dir / "full", folder)
    outputs = load_file(str(folder / "outputs.safetensors"))
    outputs["noise_pred_cond"] = outputs["noise_pred_cond"] + 1e-3
    save_file(outputs, str(folder / "outputs.safetensors"))
    rows = {r.name: r for r in run_parity(folder)}
    assert not rows["noise_pred_cond"].passed
    assert rows["noise_pred_base"].passed


def test_guidance_formula_matches_fixture(fixtures_dir):
    from lynx_ext.pipeline import combine_guidance

    full = load_file(str(fixtures_dir / "full" / "outputs.safetensors"))
    cfg = combine_guidance(full["noise_pred_cond"], full["noise_pred_uncond"], 5.0, full["noise_pred_i"], 2.0)
    assert torch.allclose(cfg, full["noise_pred_cfg"], atol=1e-6)
    lite = load_file(str(fixtures_dir / "lite" / "outputs.safetensors"))
    row0, row1 = lite["noise_pred_batch_uncond_cond"]
    assert torch.allclose(combine_guidance(row1[None], row0[None], 5.0), lite["noise_pred_cfg"], atol=1e-6)
