"""Videos are read and written without imageio-ffmpeg's ``preexec_fn`` (which deadlocks a forked child when another
thread holds a lock: a DDP training rank hung on it reading a clip), and a user's own setting is kept."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lynx_ext.conditioners.media import load_frames
from lynx_ext.outputs import write_video

VAR = "IMAGEIO_FFMPEG_NO_PREVENT_SIGINT"


def spawn_kwargs():
    from imageio_ffmpeg._utils import _popen_kwargs

    return _popen_kwargs(prevent_sigint=True)


def test_writing_a_video_spawns_ffmpeg_without_preexec(tmp_path, monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    assert spawn_kwargs()["preexec_fn"] is not None  # imageio-ffmpeg's default: the unsafe path
    frames = [Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)) for i in range(4)]
    write_video(frames, tmp_path / "clip.mp4", fps=8)
    assert spawn_kwargs()["preexec_fn"] is None


def test_reading_a_video_spawns_ffmpeg_without_preexec(tmp_path, monkeypatch):
    frames = [Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)) for i in range(4)]
    write_video(frames, tmp_path / "clip.mp4", fps=8)
    monkeypatch.delenv(VAR, raising=False)
    assert spawn_kwargs()["preexec_fn"] is not None
    assert len(load_frames(tmp_path / "clip.mp4")) == 4
    assert spawn_kwargs()["preexec_fn"] is None


@pytest.mark.parametrize("value", ["0", "1"])
def test_a_users_setting_is_kept(tmp_path, monkeypatch, value):
    monkeypatch.setenv(VAR, value)
    frames = [Image.fromarray(np.zeros((32, 32, 3), np.uint8))] * 2
    write_video(frames, tmp_path / "clip.mp4", fps=8)
    import os

    assert os.environ[VAR] == value
