"""Real video files for the data tests, written with PyAV (no mocks)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 8  # frame index encoded as 8 black/white vertical stripes of 8 pixels on a 64x64 frame


def index_frame(i: int, size: int = 64) -> np.ndarray:
    """A ``[size, size, 3]`` frame whose stripes spell ``i`` in binary (most significant bit on the left)."""
    frame = np.zeros((size, size, 3), np.uint8)
    w = size // BITS
    for b in range(BITS):
        if (i >> (BITS - 1 - b)) & 1:
            frame[:, b * w:(b + 1) * w] = 255
    return frame


def read_index(frame: np.ndarray) -> int:
    """Inverse of :func:`index_frame` (reads the centre of each stripe)."""
    h, w = frame.shape[:2]
    sw = w // BITS
    bits = [int(frame[h // 2, b * sw + sw // 2].mean() > 127) for b in range(BITS)]
    return int("".join(map(str, bits)), 2)


def write_video(path: str | Path, frames: np.ndarray | list, fps: int = 25, pix_fmt: str = "yuv420p",
                pts: list[int] | None = None, time_base: Fraction | None = None, lossless: bool = True,
                codec: str = "libx264") -> Path:
    """Encode RGB frames ``[N, H, W, 3]`` (or their explicit ``pts`` in ``time_base``: variable frame rate)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    with av.open(str(path), "w") as c:
        options = {"qp": "0"} if lossless and codec == "libx264" else {}
        s = c.add_stream(codec, rate=fps, options=options)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if time_base is not None:
            s.time_base = time_base
            s.codec_context.time_base = time_base
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24").reformat(format=pix_fmt)
            vf.pts = pts[i] if pts is not None else i
            if time_base is not None:
                vf.time_base = time_base
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_index_video(path, n: int, fps: int = 25, **kw) -> Path:
    return write_video(path, [index_frame(i) for i in range(n)], fps, **kw)


def write_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        n = int(seconds * 44100)
        t = np.arange(n) / 44100
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame_size = s.codec_context.frame_size or 1024
        for lo in range(0, n, frame_size):
            chunk = samples[:, lo:lo + frame_size]
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
            af.sample_rate = 44100
            af.pts = lo
            for p in s.encode(af):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return Path(path)
