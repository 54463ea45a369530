"""Tests of novelviews.io.video: MP4 round trip, GIF fallback, contact sheets."""

from __future__ import annotations

import numpy as np
import pytest

from novelviews.errors import ImageError
from novelviews.io import video
from novelviews.io.images import load_image


def _frames(n=6, h=15, w=21):
    """Flat colours that change per frame (odd size on purpose)."""
    return [np.full((h, w, 3), [0.1 + 0.1 * i, 0.5, 0.9 - 0.1 * i], np.float32) for i in range(n)]


def test_mp4_roundtrip(tmp_path):
    frames = _frames()
    p = video.write_video(tmp_path / "out" / "v.mp4", frames, fps=12)
    assert p.suffix == ".mp4" and p.stat().st_size > 0
    assert sorted(x.name for x in p.parent.iterdir()) == ["v.mp4"]  # atomic: no temp left
    back = video.read_video_frames(p)
    assert len(back) == 6
    assert back[0].shape == (16, 22, 3)  # padded to even for yuv420p
    for f, b in zip(frames, back):
        np.testing.assert_allclose(b.mean(axis=(0, 1)), f[0, 0], atol=0.02)
    # uint8 input gives the same video content
    p2 = video.write_video(tmp_path / "u.mp4", [(f * 255).round().astype(np.uint8) for f in frames], fps=12)
    np.testing.assert_allclose(video.read_video_frames(p2)[3], back[3], atol=2 / 255)


def test_gif_fallback_without_ffmpeg(tmp_path, monkeypatch, capsys, caplog):
    """The library prints nothing: the fallback is a note through logging (the CLI shows it)."""
    monkeypatch.setattr(video, "_ffmpeg_exe", lambda: None)
    with caplog.at_level("INFO", logger="novelviews"):
        p = video.write_video(tmp_path / "v.mp4", _frames(4, 8, 8), fps=10)
    assert p.name == "v.gif" and "ffmpeg is not available" in caplog.text
    assert "ffmpeg" not in capsys.readouterr().out
    back = video.read_video_frames(p)
    assert len(back) == 4
    np.testing.assert_allclose(back[2][0, 0], [0.3, 0.5, 0.7], atol=0.03)


def test_video_bad_input(tmp_path):
    with pytest.raises(ImageError, match="no frames"):
        video.write_video(tmp_path / "v.mp4", [])
    with pytest.raises(ImageError, match="frame 1 is"):
        video.write_video(tmp_path / "v.mp4", [np.zeros((4, 4, 3)), np.zeros((6, 4, 3))])
    with pytest.raises(ImageError, match="fps"):
        video.write_video(tmp_path / "v.mp4", _frames(2), fps=0)
    assert not any(tmp_path.iterdir())


def test_contact_sheet_layout(tmp_path):
    imgs = [np.full((10, 12, 3), i / 10, np.float32) for i in range(5)]
    sheet = video.contact_sheet(imgs, cols=3, pad=2)
    assert sheet.shape == (2 * 10 + 3 * 2, 3 * 12 + 4 * 2, 3)
    # image 4 sits in row 1, column 1
    y, x = 2 + 10 + 2, 2 + 12 + 2
    np.testing.assert_allclose(sheet[y : y + 10, x : x + 12], 0.4)
    np.testing.assert_allclose(sheet[0], 1.0)  # padding is background
    np.testing.assert_allclose(sheet[y : y + 10, 2 + 2 * 14 : 2 + 2 * 14 + 12], 1.0)  # empty 6th cell
    default = video.contact_sheet(imgs)  # ceil(sqrt(5)) = 3 columns
    assert default.shape == sheet.shape

    labelled = video.contact_sheet(imgs, cols=5, labels=[f"v{i}" for i in range(5)], pad=1)
    assert labelled.shape[1] == 5 * 12 + 6 and labelled.shape[0] > 10 + 2
    strip = labelled[1 + 10 :, 1 : 1 + 12]
    assert strip.min() < 0.5  # some black text drawn in the label strip
    np.testing.assert_allclose(labelled[1 : 1 + 10, 1 : 1 + 12], 0.0)  # image pixels untouched

    mixed = video.contact_sheet([np.zeros((4, 4, 3)), np.ones((8, 6), np.float32)], cols=2, pad=0)
    assert mixed.shape == (8, 12, 3)
    np.testing.assert_allclose(mixed[2:6, 1:5], 0.0)  # the small image is centred in its cell

    p = video.save_contact_sheet(tmp_path / "sheet.png", imgs, cols=3, pad=2)
    np.testing.assert_allclose(load_image(p), sheet, atol=0.5 / 255 + 1e-6)
    with pytest.raises(ImageError, match="one label per image"):
        video.contact_sheet(imgs, labels=["a"])
