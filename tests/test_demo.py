"""``make demo``: the offline tiny run writes its outputs and does not present a meaningless face similarity."""
from __future__ import annotations

import json

from lynx_ext import demo


def test_demo_outputs_and_no_similarity_claim(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LYNX_EXT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(demo, "REAL_COMMAND", "diffsynth-ext generate ...")
    from lynx_ext.inference import tiny_preset

    small = tiny_preset.tiny_generator

    def fast(variant):  # the demo's own generator, at 1 step / 1 frame / 32 px to keep the test short
        gen = small(variant)
        run = gen.generate
        gen.generate = lambda *a, **k: run(*a, **k, num_inference_steps=1, num_frames=1, height=32, width=32)
        return gen

    monkeypatch.setattr(tiny_preset, "tiny_generator", fast)
    assert demo.main(str(tmp_path / "out")) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "lynx_demo_report.json").read_text())
    assert "face_similarity" not in report
    assert any("face similarity not measured" in n and "mean nothing" in n for n in report["notes"])
    assert "no face\nsimilarity is reported" in printed and "similarity 0." not in printed
    assert (tmp_path / "out" / "lynx_demo.mp4").stat().st_size > 0
