"""Decoding, resampling by timestamps, resize/crop, pixel formats, rotation, frame folders (real files)."""

import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from vqvideo.data.video import VideoError, load_frames, resample, scaled_size
from video_helpers import index_frame, read_index, write_index_video, write_video


def picked(frames):
    return [read_index(f) for f in frames]


@pytest.mark.parametrize("src_fps", [30, 60, 12, 25])
def test_resampling_picks_the_frame_whose_interval_contains_each_output_time(tmp_path, src_fps):
    path = write_index_video(tmp_path / f"idx{src_fps}.mp4", 2 * src_fps, src_fps)
    frames = load_frames(path, fps=25, resolution=64)
    assert frames.shape == (50, 64, 64, 3)  # 2 s at 25 fps
    # output time k/25 lies in [i/src, (i+1)/src) for i = floor(k * src / 25), computed exactly
    assert picked(frames) == [k * src_fps // 25 for k in range(50)]
    if src_fps == 30:
        assert picked(frames)[:8] == [0, 1, 2, 3, 4, 6, 7, 8]
    if src_fps == 60:
        assert picked(frames)[:6] == [0, 2, 4, 7, 9, 12]


def test_variable_frame_rate(tmp_path):
    # irregular presentation times (ms): bursts and gaps
    pts = np.cumsum([0] + [10, 50, 20, 80, 40, 40, 15, 100, 33, 33, 33, 60, 7, 90, 40, 40, 40, 40, 40])
    path = write_index_video(tmp_path / "vfr.mp4", len(pts), 25, pts=[int(p) for p in pts],
                             time_base=Fraction(1, 1000))
    frames = load_frames(path, fps=25, resolution=64)
    t = np.arange(len(frames)) * 40  # output times in ms
    expected = np.searchsorted(pts, t, side="right") - 1  # the last frame shown at or before t
    assert picked(frames) == expected.tolist()
    assert (len(frames) - 1) * 40 < pts[-1] + 40 <= len(frames) * 40  # ends with the last frame's interval


def test_resample_exact_fractions_and_max_frames():
    src = Fraction(30000, 1001)  # NTSC: floating point would drift
    timed = ((Fraction(i) / src, None, i) for i in range(3000))
    out = [i for _, i in resample(timed, Fraction(25))]
    assert out == [k * 30000 // (25 * 1001) for k in range(len(out))]
    timed = ((Fraction(i, 30), None, i) for i in range(300))
    assert len(list(resample(timed, Fraction(25), max_frames=16))) == 16


@pytest.mark.parametrize("w,h,res", [(96, 64, 32), (64, 112, 48), (40, 30, 64), (64, 64, 64)])
def test_shapes_short_side_resize_and_center_crop(tmp_path, w, h, res):
    frames = np.zeros((10, h, w, 3), np.uint8)
    frames[:] = (0, 200, 0)
    if w > h:  # side bands that the centre crop must remove
        band = (w - h) // 2
        frames[:, :, :band - 2] = (200, 0, 0)
        frames[:, :, w - band + 2:] = (200, 0, 0)
    path = write_video(tmp_path / "v.mp4", frames, pix_fmt="yuv444p")
    out = load_frames(path, fps=25, resolution=res)
    assert out.shape == (10, res, res, 3) and out.dtype == np.uint8
    assert np.abs(out[..., 1].astype(int) - 200).max() < 12 and out[..., 0].max() < 12
    assert scaled_size(w, h, res)[min(range(2), key=lambda i: (w, h)[i])] == res


def test_downscaling_is_antialiased(tmp_path):
    checker = ((np.indices((128, 128)).sum(0) % 2) * 255).astype(np.uint8)
    frames = np.repeat(checker[None, ..., None], 3, -1).repeat(4, 0)
    out = load_frames(write_video(tmp_path / "c.mp4", frames, pix_fmt="yuv444p"), 25, 32)
    # averaging gives flat mid-grey; point sampling would give pure black or white
    assert abs(out.mean() - 127.5) < 3 and out.std() < 4


@pytest.mark.parametrize("pix_fmt", ["gray", "yuv444p", "yuv420p10le", "gray10le"])
def test_any_pixel_format_becomes_rgb24(tmp_path, pix_fmt):
    colour = (180, 180, 180) if pix_fmt.startswith("gray") else (200, 60, 30)
    frames = np.zeros((8, 48, 64, 3), np.uint8)
    frames[:] = colour
    path = write_video(tmp_path / f"{pix_fmt}.mp4", frames, pix_fmt=pix_fmt)
    out = load_frames(path, 25, 32)
    assert out.shape == (8, 32, 32, 3)
    if pix_fmt.startswith("gray"):
        # x264 marks gray as limited range (16-235), so the colour read back is expanded; ask ffmpeg what it is
        if shutil.which("ffmpeg") is None:
            pytest.skip("needs the ffmpeg command line")
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                              "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
        colour = np.frombuffer(raw, np.uint8).reshape(-1, 3).mean(0)
        assert np.ptp(colour) < 1 and abs(colour[0] - 180) < 20
    assert np.abs(out.reshape(-1, 3).mean(0) - colour).max() < 6


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command line")
@pytest.mark.parametrize("angle", [90, 270])
def test_rotation_metadata_is_honoured_like_ffmpeg(tmp_path, angle):
    frames = np.zeros((5, 64, 64, 3), np.uint8)
    frames[:, :, :16] = (255, 0, 0)  # left band red, top band green: any rotation or flip changes the picture
    frames[:, :8, :] = (0, 255, 0)
    src = write_video(tmp_path / "src.mp4", frames, pix_fmt="yuv444p")
    rotated = tmp_path / "rot.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy", "-metadata:s:v",
                    f"rotate={angle}", str(rotated)], check=True)
    ours = load_frames(rotated, 25, 64)[0]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(rotated), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    theirs = np.frombuffer(raw, np.uint8).reshape(64, 64, 3)  # ffmpeg autorotates
    assert np.abs(ours.astype(int) - theirs).mean() < 3
    assert np.abs(ours.astype(int) - load_frames(src, 25, 64)[0]).mean() > 30


def test_frame_folder_at_configured_fps(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(45):  # natural order: frame9 before frame10
        Image.fromarray(index_frame(i)).save(folder / f"frame{i}.png")
    frames = load_frames(folder, fps=25, resolution=64, frame_folder_fps=30)
    assert frames.shape[0] == 38  # 45 frames at 30 fps = 1.5 s: output times 0, 0.04, ..., 1.48
    assert picked(frames) == [k * 30 // 25 for k in range(38)]


def test_max_frames_stops_early(tmp_path):
    path = write_index_video(tmp_path / "v.mp4", 60, 30)
    assert picked(load_frames(path, 25, 64, max_frames=5)) == [0, 1, 2, 3, 4]


def test_errors_are_sentences(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(VideoError, match="empty file"):
        load_frames(empty, 25, 64)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(VideoError, match="not a readable video"):
        load_frames(junk, 25, 64)
