"""Grids, PNG/GIF/MP4 files read back with Pillow and PyAV, and training curves."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
from PIL import Image

from vqvideo import viz


def videos(n=2, t=5, h=9, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, t, h, w, 3), dtype=np.uint8)


def test_video_grid_layout():
    a, b = videos(2), videos(1, seed=1)
    g = viz.video_grid([a, b[0]], gap=2)
    assert g.shape == (5, 2 * 9 + 2, 2 * 7 + 2, 3) and g.dtype == np.uint8
    assert np.array_equal(g[:, :9, :7], a[0]) and np.array_equal(g[:, :9, 9:16], a[1])
    assert np.array_equal(g[:, 11:20, :7], b[0])
    assert (g[:, 11:, 7:] == viz.FILL).all()  # gaps and the missing second video of row 2
    with pytest.raises(ValueError, match="share"):
        viz.video_grid([a, videos(1, t=4)])


def test_time_grid_puts_frames_left_to_right():
    v = videos(2)
    img = viz.time_grid(v, gap=1)
    assert img.shape == (2 * 9 + 1, 5 * 7 + 4, 3)
    assert np.array_equal(img[10:, 8:15], v[1, 1])


def test_png_gif_mp4_files(tmp_path):
    v = videos(1, t=6, h=15, w=11)[0]  # odd sizes: the mp4 is padded to even
    img = np.asarray(Image.open(viz.save_png(v, tmp_path / "a.png")))
    assert img.shape == (15, 6 * 11 + 5 * viz.GAP, 3) and np.array_equal(img[:, :11], v[0])
    with Image.open(viz.save_gif(v, tmp_path / "a.gif", fps=5)) as gif:
        assert gif.n_frames == 6 and gif.size == (11, 15) and gif.info["duration"] == 200
    smooth = np.broadcast_to(np.linspace(0, 255, 11, dtype=np.uint8)[None, None, :, None], (6, 15, 11, 3)).copy()
    viz.save_mp4(smooth, tmp_path / "a.mp4", fps=5)
    with av.open(str(tmp_path / "a.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (16, 12, 3)
    assert np.abs(frames[3][:15, :11].astype(int) - smooth[3]).mean() < 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4", "a.png"]  # no temporary files


def test_plot_curves_reads_train_and_val(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [{"step": s, "split": "train", "loss": 1 / s} for s in range(1, 20)]
    lines += [{"step": 10, "split": "val", "loss": 0.2, "psnr": 20.0}]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 21, "spl')  # torn last line
    assert len(viz.read_log(log)) == 20
    out = viz.plot_curves(log, tmp_path / "curves.png", keys=["loss", "psnr", "absent"], title="t", logy=True)
    w, h = Image.open(out).size
    assert w > 2 * h  # three panels side by side
