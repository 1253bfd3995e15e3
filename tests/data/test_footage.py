"""The data stage on real footage (bikes.mp4: 640x272 at 25 fps with scene cuts; carphone_pristine.mp4: 176x144
at 29.97 fps), fetched by vqvideo.data.footage; the held-out split that config/real.yaml trains on."""

from __future__ import annotations

import hashlib
import math
import sys
from fractions import Fraction

import av
import h5py
import numpy as np
import pytest

from vqvideo.cli import main
from vqvideo.data.datasets import read_manifest
from vqvideo.data.footage import FILES, fetch_footage, split_footage

pytestmark = pytest.mark.usefixtures("one_thread")

BIKES_CUTS = [30, 76, 137, 187, 242]  # first frames of bikes.mp4's new shots (the largest frame differences)


def _source_frames(path) -> tuple[list[np.ndarray], list[float]]:
    """Every decoded frame of ``path`` at its own size (RGB) and its time in seconds."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        return [f.to_ndarray(format="rgb24") for f in frames], [float(f.pts * stream.time_base) for f in frames]


@pytest.fixture(scope="module")
def prepared(footage, tmp_path_factory):
    """prepare-data on both clips (64x64, 25 fps, 16-frame clips every 16 frames): the data folder."""
    root = tmp_path_factory.mktemp("footage")
    videos = root / "videos"
    videos.mkdir()
    for name, path in footage.items():
        (videos / name).symlink_to(path)
    assert main(["prepare-data", "--videos", str(videos), "--out", str(root / "data"), "--resolution", "64",
                 "--fps", "25", "--frames", "16", "--stride", "16", "--workers", "1"]) == 0
    return root / "data"


def _clips_of(data, source) -> np.ndarray:
    """The prepared clips of one source video, in time order: uint8 [N, 16, 64, 64, 3]."""
    rows = [r for r in read_manifest(data) if r["source"] == source]
    out = []
    for r in rows:
        with h5py.File(data / "shards" / r["shard"], "r") as f:
            out.append(f["clips"][r["index"]])
    return np.stack(out)


def test_the_footage_is_cached_checked_and_not_fetched_again(footage, monkeypatch):
    for name, path in footage.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == FILES[name]
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # a second fetch would fail: it must not run
    assert fetch_footage(next(iter(footage.values())).parent) == footage


def test_prepare_data_on_real_footage_counts_clips_at_25_fps(prepared):
    rows = read_manifest(prepared)
    counts = {s: sum(r["source"] == s for r in rows) for s in FILES}
    # bikes: 250 frames -> 15 clips of 16; carphone: 120 frames at 29.97 fps = 4.004 s -> 100 frames at 25 fps -> 6
    assert counts == {"bikes.mp4": 15, "carphone_pristine.mp4": 6}
    starts = [r["start_s"] for r in rows if r["source"] == "carphone_pristine.mp4"]
    assert starts == pytest.approx([i * 16 / 25 for i in range(6)])
    with h5py.File(prepared / "shards" / rows[0]["shard"], "r") as f:
        assert f["clips"].shape[1:] == (16, 64, 64, 3) and f.attrs["fps"] == 25


def test_29_97_fps_is_resampled_by_timestamp(footage, prepared):
    """Output frame k (time k/25 s) is the source frame shown at that time: floor(k * 29.97 / 25), which skips
    one source frame in six and never drifts over the clip's 4 s."""
    from vqvideo.data.video import FrameScaler

    src, times = _source_frames(footage["carphone_pristine.mp4"])
    clips = _clips_of(prepared, "carphone_pristine.mp4").reshape(-1, 64, 64, 3)  # frames 0..95
    scale = FrameScaler(64)
    with av.open(str(footage["carphone_pristine.mp4"])) as c:
        sar = c.streams.video[0].sample_aspect_ratio
        scaled = [scale(f, sar) for f in c.decode(video=0)]
    for k in range(len(clips)):
        i = max(j for j, t in enumerate(times) if t <= k / 25 + 1e-9)
        assert i == math.floor(k * 30000 / 1001 / 25)
        assert np.array_equal(clips[k], scaled[i]), k


@pytest.mark.parametrize("name, size, aspect", [("bikes.mp4", (640, 272), Fraction(1)),
                                                ("carphone_pristine.mp4", (176, 144), Fraction(128, 117))])
def test_odd_sizes_keep_the_centre_square_of_the_whole_height(footage, prepared, name, size, aspect):
    """The short side becomes 64 and the centre 64x64 is kept, in display proportions (carphone's pixels are
    128:117, wider than tall): checked against an independent resize (PIL's box filter) of the whole frame."""
    from PIL import Image

    src, _ = _source_frames(footage[name])
    assert src[0].shape[:2] == size[::-1]
    with av.open(str(footage[name])) as c:
        assert c.streams.video[0].sample_aspect_ratio == aspect
    w = round(size[0] * float(aspect) * 64 / size[1])
    frame = _clips_of(prepared, name)[0, 0].astype(float)
    expected = np.asarray(Image.fromarray(src[0]).resize((w, 64), Image.BOX), dtype=float)
    x0 = (w - 64) // 2
    assert np.abs(frame - expected[:, x0:x0 + 64]).mean() < 4
    assert np.abs(frame - expected[:, :64]).mean() > 8  # a crop from the left would be told apart


def test_bikes_scene_cuts_land_on_the_same_frames_after_preparing(prepared):
    """bikes.mp4 is 25 fps: the data stage keeps every frame, so its shots change at the source's frames."""
    frames = _clips_of(prepared, "bikes.mp4").reshape(-1, 64, 64, 3).astype(float)  # frames 0..239 (15 x 16)
    diffs = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    cuts = sorted((np.argsort(diffs)[::-1][:4] + 1).tolist())
    assert cuts == [c for c in BIKES_CUTS if c < len(frames)]


@pytest.mark.slow  # decodes and re-encodes both videos (~10 s of CPU)
def test_the_held_out_split_is_lossless_and_keeps_timestamps(footage, tmp_path):
    written = split_footage(footage, tmp_path, holdout=0.45)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "train/bikes.mp4", "train/carphone_pristine.mp4", "val/bikes.mp4", "val/carphone_pristine.mp4"]
    for name, n_train in (("bikes.mp4", 138), ("carphone_pristine.mp4", 66)):
        src, times = _source_frames(footage[name])
        train, train_t = _source_frames(tmp_path / "train" / name)
        val, val_t = _source_frames(tmp_path / "val" / name)
        assert len(train) == n_train and len(train) + len(val) == len(src)
        assert all(np.array_equal(a, b) for a, b in zip(src, train + val))  # the source's pixels
        gap = times[1] - times[0]
        assert val_t[0] == 0 and np.allclose(np.diff(val_t), gap) and np.allclose(np.diff(train_t), gap)
        with av.open(str(tmp_path / "val" / name)) as c:
            stream = c.streams.video[0]
            assert stream.average_rate == {"bikes.mp4": 25, "carphone_pristine.mp4": Fraction(30000, 1001)}[name]
            assert stream.sample_aspect_ratio == {"bikes.mp4": 1, "carphone_pristine.mp4": Fraction(128, 117)}[name]


def _planes(path) -> list[list[np.ndarray]]:
    """Each decoded frame of ``path`` as its pixel planes in the stored format (Y, U, V for yuv420p)."""
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(c.streams.video[0]):
            out.append([np.frombuffer(bytes(p), np.uint8).reshape(p.height, p.line_size)[:, :p.width]
                        for p in f.planes])
        return out


def test_square_windows_span_the_long_side_on_screen():
    from vqvideo.data.footage import square_windows

    assert square_windows(640, 272, None, 3) == [(272, 272, 0, 0), (272, 272, 184, 0), (272, 272, 368, 0)]
    # carphone's 128:117 pixels: 132 stored columns are 144.4 on screen, square with its 144 rows
    assert square_windows(176, 144, Fraction(128, 117), 3) == [(132, 144, 0, 0), (132, 144, 22, 0),
                                                                 (132, 144, 44, 0)]
    assert square_windows(144, 177, None, 2) == [(144, 144, 0, 0), (144, 144, 0, 32)]  # portrait, odd: even


@pytest.mark.slow  # decodes and re-encodes both videos three times (~15 s of CPU)
def test_training_windows_are_lossless_crops_and_the_held_out_part_stays_whole(footage, tmp_path):
    from vqvideo.data.footage import square_windows

    written = split_footage(footage, tmp_path, holdout=0.45, windows=3)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        *[f"train/bikes-w{k}.mp4" for k in range(3)], *[f"train/carphone_pristine-w{k}.mp4" for k in range(3)],
        "val/bikes.mp4", "val/carphone_pristine.mp4"]
    for name, n_train in (("bikes.mp4", 138), ("carphone_pristine.mp4", 66)):
        src = _planes(footage[name])
        assert len(_planes(tmp_path / "val" / name)) == len(src) - n_train
        with av.open(str(footage[name])) as c:
            stream = c.streams.video[0]
            boxes = square_windows(stream.width, stream.height, stream.sample_aspect_ratio, 3)
        for k, (w, h, x, y) in enumerate(boxes):
            window = _planes(tmp_path / "train" / f"{name[:-4]}-w{k}.mp4")
            assert len(window) == n_train
            for got, full in zip(window, src[:n_train]):  # Y at full size, U and V at half (4:2:0)
                for plane, ref, s in zip(got, full, (1, 2, 2)):
                    assert np.array_equal(plane, ref[y // s:(y + h) // s, x // s:(x + w) // s])
