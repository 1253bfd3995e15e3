"""Pictures of videos and training curves: grids, PNG, GIF, MP4, loss plots.

Videos here are uint8 numpy arrays ``[T, H, W, 3]`` (a batch: ``[N, T, H, W, 3]``). Every file is written to a
temporary name beside its target and renamed when complete, so a reader never sees half a picture.

Grid layout (:func:`video_grid`): ``rows[i]`` is one row of videos ``[N_i, T, H, W, 3]`` (or one video
``[T, H, W, 3]``); row i is drawn at the i-th place from the top, its videos left to right, separated by
``gap`` pixels of ``fill`` (white). Rows with fewer videos are padded on the right. The result is again a
video ``[T, H', W', 3]`` with ``H' = R*H + (R-1)*gap`` and ``W' = max_i N_i * W + (max_i N_i - 1)*gap``,
so that e.g. rows = [originals, reconstructions] shows each original above its reconstruction.
:func:`time_grid` lays videos out the other way for one still picture: one video per row, time left to right.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from vqvideo.runtime.files import atomic_path

GAP = 2
FILL = 255


# --------------------------------------------------------------------------------------------- layout
def _as_row(row: np.ndarray) -> np.ndarray:
    row = np.asarray(row)
    if row.ndim == 4:
        row = row[None]
    if row.ndim != 5 or row.shape[-1] != 3:
        raise ValueError(f"a grid row must be [N, T, H, W, 3] or [T, H, W, 3] uint8, got shape {row.shape}")
    return row


def video_grid(rows: Sequence[np.ndarray], gap: int = GAP, fill: int = FILL) -> np.ndarray:
    """Tile rows of videos into one video ``[T, H', W', 3]`` (layout in the module docstring)."""
    rows = [_as_row(r) for r in rows]
    if not rows:
        raise ValueError("video_grid needs at least one row")
    t, h, w = rows[0].shape[1:4]
    for r in rows:
        if r.shape[1:4] != (t, h, w):
            raise ValueError(f"all videos in a grid must share [T, H, W] = {(t, h, w)}, got {r.shape[1:4]}")
    ncols = max(r.shape[0] for r in rows)
    out = np.full((t, len(rows) * (h + gap) - gap, ncols * (w + gap) - gap, 3), fill, dtype=np.uint8)
    for i, r in enumerate(rows):
        for j, video in enumerate(r):
            out[:, i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = video
    return out


def time_grid(videos: Sequence[np.ndarray] | np.ndarray, gap: int = GAP, fill: int = FILL) -> np.ndarray:
    """One still image ``[N*H + gaps, T*W + gaps, 3]``: video i in row i, its frames left to right."""
    videos = [np.asarray(v) for v in videos]
    frames = [np.stack(list(v)) for v in videos]  # each [T, H, W, 3]
    # a time grid is a video grid of one frame whose "videos" are the frames: reuse the same tiling
    return video_grid([f[:, None] for f in frames], gap=gap, fill=fill)[0]


def labelled_grid(columns: Sequence[tuple[str, np.ndarray]], frame_labels: Sequence[str], gap: int = GAP,
                  fill: int = FILL) -> np.ndarray:
    """Videos side by side with a label above each and a label under each frame: ``[T, H', W', 3]``.

    ``columns``: ``(label, video [T, H, W, 3])`` left to right; ``frame_labels[t]`` is written under frame t (e.g.
    its number). Labels are 11-pixel text: enlarge small videos first (:func:`enlarge`).
    """
    from PIL import Image, ImageDraw, ImageFont

    videos = [np.asarray(v) for _, v in columns]
    body = video_grid([np.stack(videos)], gap=gap, fill=fill)  # [T, H, W', 3]
    t, h, w = body.shape[:3]
    if len(frame_labels) != t:
        raise ValueError(f"{len(frame_labels)} frame labels for {t} frames")
    font = ImageFont.load_default(size=11)
    band = 16
    header = Image.new("RGB", (w, band), (fill,) * 3)
    draw = ImageDraw.Draw(header)
    tile = videos[0].shape[2]
    for j, (label, _) in enumerate(columns):
        x0 = j * (tile + gap)
        width = draw.textlength(label, font=font)
        draw.text((x0 + max(0, (tile - width) / 2), 2), label, fill=(0, 0, 0), font=font)
    header = np.asarray(header)
    out = np.full((t, h + 2 * band, w, 3), fill, np.uint8)
    for k in range(t):
        footer = Image.new("RGB", (w, band), (fill,) * 3)
        ImageDraw.Draw(footer).text((2, 2), frame_labels[k], fill=(0, 0, 0), font=font)
        out[k, :band], out[k, band:band + h], out[k, band + h:] = header, body[k], np.asarray(footer)
    return out


def enlarge(video: np.ndarray, scale: int) -> np.ndarray:
    """``[..., H, W, 3]`` -> ``[..., scale*H, scale*W, 3]`` (nearest neighbour: every pixel a square)."""
    return video.repeat(scale, axis=-3).repeat(scale, axis=-2) if scale > 1 else video


def text_tile(text: str, height: int, width: int, value: int = 128) -> np.ndarray:
    """A grey ``[height, width, 3]`` tile with ``text`` in its middle (e.g. "no frame")."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.new("RGB", (width, height), (value,) * 3)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=10)
    tw = draw.textlength(text, font=font)
    draw.text((max(0, (width - tw) / 2), height / 2 - 6), text, fill=(255, 255, 255), font=font)
    return np.asarray(im)


# --------------------------------------------------------------------------------------------- files
def save_png(frames_or_image: np.ndarray, path: str | Path) -> Path:
    """Save an image ``[H, W, 3]`` or a video ``[T, H, W, 3]`` (its frames left to right) as one PNG."""
    from PIL import Image

    arr = np.asarray(frames_or_image)
    if arr.ndim == 4:
        arr = time_grid([arr])
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"save_png needs [H, W, 3] or [T, H, W, 3], got {arr.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(arr.astype(np.uint8)).save(tmp, format="PNG")
    return Path(path)


def save_gif(frames: np.ndarray, path: str | Path, fps: float = 8) -> Path:
    """Save a video ``[T, H, W, 3]`` uint8 as a looping GIF (Pillow)."""
    from PIL import Image

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"save_gif needs [T, H, W, 3], got {frames.shape}")
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(1, round(1000 / fps)), loop=0, optimize=False)
    return Path(path)


def save_mp4(frames: np.ndarray, path: str | Path, fps: float = 8, crf: int = 18) -> Path:
    """Save a video ``[T, H, W, 3]`` uint8 as H.264 / yuv420p MP4 (PyAV).

    yuv420p needs even sizes: an odd height or width is padded by repeating the last row/column.
    """
    import fractions

    import av

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"save_mp4 needs [T, H, W, 3], got {frames.shape}")
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            rate = fractions.Fraction(fps).limit_denominator(1000)
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "threads": "1"}  # one thread: the same bytes on every machine
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return Path(path)


# --------------------------------------------------------------------------------------------- curves
def read_log(log_jsonl_path: str | Path) -> list[dict]:
    """The records of a JSONL log (a torn last line, from a killed writer, is skipped)."""
    records = []
    for line in Path(log_jsonl_path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_curves(log_jsonl_path: str | Path, out_png: str | Path, keys: list[str], title: str = "",
                logy: bool = False) -> Path:
    """One panel per key: its "train" records as a line and its "val" records as dots, against the step.

    Records are the harness's log lines ``{"step", "split", key: value, ...}``; records without a
    ``split`` count as train. A key absent from the log gives an empty panel, so plots never fail a run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_jsonl_path)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for split, style in (("train", dict(lw=1.2)), ("val", dict(marker="o", ms=4, lw=1))):
            pts = [(r["step"], r[key]) for r in records
                   if r.get("split", "train") == split and isinstance(r.get(key), (int, float))]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, label=split, **style)
        if logy and ax.lines and all(min(line.get_ydata()) > 0 for line in ax.lines):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if title:
        fig.suptitle(title)
    return _save_figure(fig, out_png)


PER_FRAME_LINES = (  # (quality.json entry, key prefix, label, style)
    ("samples", "", "samples (mean)", dict(color="C0", lw=2)),
    ("samples", "best_of_k_", "samples (best of K)", dict(color="C0", lw=1.5, ls="--")),
    ("copy_last", "", "copy last frame", dict(color="C3", lw=1.5)),
    ("reconstructions", "", "VQ-VAE reconstructions", dict(color="C2", lw=1.5)),
    ("true_top", "", "true top, sampled bottom", dict(color="C1", lw=1.2, ls=":")),
)


def plot_per_frame(quality: dict, out_png: str | Path) -> Path:
    """PSNR and SSIM per predicted frame (the figure video-prediction papers show) from a ``quality.json``
    dict: the samples' mean and best of K, copy-last, the reconstructions and the true-top diagnostic, where
    present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first, last = quality["predicted_frames"]
    frames = list(range(first, last + 1))
    entries = {**quality, "true_top": (quality.get("diagnostics") or {}).get("true_top_sampled_bottom")}
    k = (quality.get("samples") or {}).get("k")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, unit in ((axes[0], "psnr", "PSNR (dB, of the mean MSE per frame)"), (axes[1], "ssim", "SSIM")):
        for entry, prefix, label, style in PER_FRAME_LINES:
            curve = (entries.get(entry) or {}).get(f"{prefix}{metric}_per_frame")
            if curve:
                if prefix == "best_of_k_" and k:
                    label = f"samples (best of {k:g})"
                ax.plot(frames, curve, marker="o", ms=3, label=label, **style)
        ax.set_xlabel("frame")
        ax.set_ylabel(unit)
        ax.set_xticks(frames)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    n = (quality.get("samples") or {}).get("n_clips")
    fig.suptitle(f"Predicted frames {first}-{last}" + (f" ({n} conditioning clips)" if n else ""))
    return _save_figure(fig, out_png)


def _save_figure(fig, out_png: str | Path) -> Path:
    """Write a matplotlib figure as PNG under a temporary name, rename it when complete, close the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return Path(out_png)
