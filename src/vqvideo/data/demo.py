"""Synthetic demo videos: coloured shapes moving and bouncing, written as real H.264 ``.mp4`` files via PyAV.

Every video is a deterministic function of ``(seed, index)``: a background (flat colour or gentle gradient)
and 2-4 shapes (discs, squares, diamonds) of varied sizes and colours, each moving at its own constant
velocity and bouncing off the frame's edges. Motion is defined in pixels per *second*, so videos at other
frame rates show the same physics, and predicting the next frames from the first four is meaningful.
Most videos are square at ``size`` and 25 fps; some are 30, 60 or 12 fps and non-square and larger, so the
data stage's resampling and crop paths run on the demo too. x264 runs single-threaded so the files are
byte-identical on every machine.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from vqvideo.runtime.files import atomic_path

# (fps, width factor, height factor) by index, cycling: most like the target, some that need resampling/cropping
VARIANTS = [(25, 1.0, 1.0), (30, 1.5, 1.0), (25, 1.0, 1.0), (60, 1.25, 1.0), (25, 1.0, 1.0), (12, 1.0, 1.75)]


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def render_video(index: int, seed: int, size: int = 64, duration: float = 2.4) -> tuple[np.ndarray, int]:
    """Frames ``[N, H, W, 3]`` uint8 of demo video ``index`` and its fps."""
    rng = np.random.default_rng([seed, index])
    fps, fw, fh = VARIANTS[index % len(VARIANTS)]
    w, h = _even(size * fw), _even(size * fh)
    n = max(1, round(duration * fps))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5

    # background: a colour, sometimes with a gradient, dark or light so the shapes stand out
    base = rng.uniform(0, 0.35, 3) if rng.random() < 0.6 else rng.uniform(0.65, 1.0, 3)
    bg = np.broadcast_to(base, (h, w, 3)).astype(np.float32).copy()
    if rng.random() < 0.5:
        direction = rng.uniform(-1, 1, 2)
        ramp = (xx * direction[0] / w + yy * direction[1] / h)[..., None]
        bg = np.clip(bg + 0.25 * ramp * rng.uniform(-1, 1, 3), 0, 1)

    shapes = []
    short = min(w, h)
    for _ in range(rng.integers(2, 5)):
        radius = rng.uniform(0.08, 0.2) * short
        speed = rng.uniform(0.3, 1.2) * short  # pixels per second
        angle = rng.uniform(0, 2 * np.pi)
        colour = 1.0 - base + rng.uniform(-0.3, 0.3, 3)  # contrasting with the background
        shapes.append(dict(kind=rng.integers(0, 3), r=radius, colour=np.clip(colour, 0, 1),
                           pos=np.array([rng.uniform(radius, w - radius), rng.uniform(radius, h - radius)]),
                           vel=speed * np.array([np.cos(angle), np.sin(angle)])))

    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = bg.copy()
        for s in shapes:
            dx, dy = xx - s["pos"][0], yy - s["pos"][1]
            if s["kind"] == 0:
                dist = np.sqrt(dx * dx + dy * dy)  # disc
            elif s["kind"] == 1:
                dist = np.maximum(np.abs(dx), np.abs(dy))  # square
            else:
                dist = (np.abs(dx) + np.abs(dy)) / np.sqrt(2)  # diamond
            alpha = np.clip(s["r"] + 0.5 - dist, 0, 1)[..., None]  # one-pixel soft edge (antialiased)
            img = img * (1 - alpha) + s["colour"] * alpha
        frames[i] = np.round(img * 255).astype(np.uint8)
        for s in shapes:  # advance one frame and bounce off the edges
            s["pos"] = s["pos"] + s["vel"] / fps
            for axis, limit in ((0, w), (1, h)):
                if s["pos"][axis] < s["r"]:
                    s["pos"][axis] = 2 * s["r"] - s["pos"][axis]
                    s["vel"][axis] = abs(s["vel"][axis])
                elif s["pos"][axis] > limit - s["r"]:
                    s["pos"][axis] = 2 * (limit - s["r"]) - s["pos"][axis]
                    s["vel"][axis] = -abs(s["vel"][axis])
    return frames, fps


def write_mp4(path: str | Path, frames: np.ndarray, fps: int, crf: int = 18) -> Path:
    """Write ``frames`` ``[N, H, W, 3]`` uint8 (even H, W) as H.264 yuv420p, atomically."""
    n, h, w, _ = frames.shape
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:  # the temporary name has no .mp4 to infer it from
            # one thread and no assembly: x264's SIMD code reads past the frame buffers (uninitialised memory), which
            # made about one file in ten differ between runs; these videos are tiny, so plain C is fast enough
            stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "threads": "1",
                                                                        "preset": "medium", "x264-params": "asm=0"})
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.thread_count = 1  # x264 output depends on its thread count: one is the same everywhere
            for i, frame in enumerate(frames):
                # convert to yuv420p ourselves, zero the row padding and number the frames, so that the bytes
                # written are the same on every run
                yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
                _zero_padding(yuv)
                yuv.pts = i
                for packet in stream.encode(yuv):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return Path(path)


def _zero_padding(frame: av.VideoFrame) -> None:
    """Zero the bytes past each row's end: x264 reads this (uninitialised) padding, so leaving it made the
    output of non-square videos differ from run to run."""
    for plane in frame.planes:
        rows = np.frombuffer(memoryview(plane), np.uint8)[: plane.line_size * plane.height]
        rows.reshape(plane.height, plane.line_size)[:, plane.width:] = 0


def make_demo_data(out: str | Path, n_videos: int = 32, seed: int = 0, size: int = 64, duration: float = 2.4,
                   val_fraction: float = 0.2, workers: int = 1) -> list[Path]:
    """Write ``n_videos`` demo videos into ``out/train`` and ``out/val``; return their paths. ``workers``
    processes render and encode them side by side (each video depends on its index only: same bytes)."""
    out = Path(out)
    n_val = max(1, round(n_videos * val_fraction))
    jobs = [(out / ("val" if i >= n_videos - n_val else "train") / f"demo_{i:04d}.mp4", i, seed, size, duration)
            for i in range(n_videos)]
    bar = dict(total=n_videos, desc="demo videos", unit="video")
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            paths = list(tqdm(pool.map(_write_video, jobs), **bar))
    else:
        paths = [_write_video(job) for job in tqdm(jobs, **bar)]
    print(f"wrote {n_videos} demo videos ({n_videos - n_val} train, {n_val} val) to {out}")
    return paths


def _write_video(job: tuple) -> Path:
    path, index, seed, size, duration = job
    frames, fps = render_video(index, seed, size, duration)
    return write_mp4(path, frames, fps)
