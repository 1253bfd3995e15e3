"""``vqvideo reconstruct``: how well a VQ-VAE checkpoint reconstructs any videos (check a tokenizer on your data).

Each input (a video file, a folder of PNG/JPEG frames, or a folder searched for both) is decoded and cut into
clips exactly as the data stage does (resampled to ``fps``, short side scaled to ``resolution`` and the
centre square kept, clips of ``frames`` frames every ``stride``), encoded and decoded. Outputs in ``OUT``:

- ``reconstruct.json``: ``{"videos": [{"path", "clips", "psnr", "ssim", "psnr_masked", "mp4", "gif",
  "clip_metrics": [{"start_s", "psnr", "ssim", "psnr_masked"}, ...]}, ...], "mean": {"psnr", "ssim",
  "psnr_masked"}, "clips": N, "spread": {metric: {"std", "ci95"}}, "settings", "checkpoint", "rejects"}``.
  A video's figures are the means over its clips; ``mean`` is over all clips (not videos); ``spread`` gives the
  clips' standard deviation and a bootstrap 95% interval of ``mean`` (clips resampled, 2000 times), which says
  how much the figure would move on other clips of the same kind. ``psnr_masked`` decodes with the bottom
  level zeroed (what the top level alone carries).
- ``NAME.mp4`` and ``NAME.gif`` per video: original | reconstruction | error x4 (``|a - b| * 4`` per channel,
  clipped at 255), left to right, playing the clips that tile the video without overlap (every
  ``ceil(frames / stride)``-th clip).

The data settings: ``--resolution`` wins, then ``--configfile``'s ``data`` section, then the settings the
checkpoint records (``data_config``, written by train-vqvae); frames, fps and stride fall back to the
schema's defaults when only a resolution is known. Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from vqvideo.runtime.device import choose_device
from vqvideo.data.params import Params
from vqvideo.data.prepare import discover, process_video
from vqvideo.data.video import is_image_file, is_video_file
from vqvideo.errors import UserError

METRICS = ("psnr", "ssim", "psnr_masked")
ERROR_GAIN = 4


class ReconstructError(UserError):
    """Bad input to ``vqvideo reconstruct`` (a missing path, no data settings, no clip)."""


# --------------------------------------------------------------------------------------------- settings
def data_params(resolution: int | None, config_data=None, recorded: dict | None = None) -> tuple[Params, str]:
    """The data settings and where they came from (see the module docstring). ``config_data`` is a
    :class:`vqvideo.config.DataConfig` (from ``--configfile``), ``recorded`` a checkpoint's ``data_config``."""
    if config_data is not None:
        params, source = Params.of(config_data), "--configfile"
    elif recorded:
        known = {f.name for f in dataclasses.fields(Params)}
        params, source = Params(**{k: v for k, v in recorded.items() if k in known}), "the checkpoint"
    elif resolution is not None:
        params, source = Params(), "the schema's defaults"
    else:
        raise ReconstructError("no data settings known: the checkpoint records none (trained before train-vqvae "
                               "recorded them); pass --resolution R or --configfile C")
    if resolution is not None:
        params, source = dataclasses.replace(params, resolution=resolution), f"--resolution (the rest from {source})"
    return Params.of(params), source


# --------------------------------------------------------------------------------------------- inputs
def list_videos(paths: list[str | Path]) -> list[Path]:
    """The videos named by ``paths``: files as they are, frame folders as one video, other folders searched
    (as the data stage searches its videos folder). A missing path, or a file that is not a video, is refused."""
    videos = []
    for path in map(Path, paths):
        if path.is_file():
            if not is_video_file(path):
                raise ReconstructError(f"{path}: not a video file (extension {path.suffix or '(none)'})")
            videos.append(path)
        elif path.is_dir():
            if any(is_image_file(p) for p in path.iterdir()):
                videos.append(path)
            else:
                videos += [path / s.rel for s in sorted(discover(path)[0], key=lambda s: s.rel)]
        else:
            raise ReconstructError(f"{path}: no such file or folder")
    if not videos:
        raise ReconstructError(f"no videos in {' '.join(map(str, paths))}")
    return videos


# --------------------------------------------------------------------------------------------- metrics
@torch.no_grad()
def reconstruct_clips(model, clips: np.ndarray, batch_size: int, device) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """uint8 clips ``[N, T, H, W, 3]`` -> (reconstructions uint8 ``[N, T, H, W, 3]``, per-clip metrics ``[N]``)."""
    from vqvideo.metrics.quality import psnr, ssim
    from vqvideo.models.vqvae import output_to_video, video_to_input

    recs, values = [], {k: [] for k in METRICS}
    for lo in range(0, len(clips), batch_size):
        batch = torch.from_numpy(clips[lo:lo + batch_size]).to(device)
        top, bottom = model.encode_codes(video_to_input(batch))
        rec = output_to_video(model.decode_codes(top, bottom))
        masked = output_to_video(model.decode_codes(top, None))
        values["psnr"].append(psnr(rec, batch).clamp(max=100).cpu())  # identical clips would give +inf
        values["ssim"].append(ssim(rec, batch).cpu())
        values["psnr_masked"].append(psnr(masked, batch).clamp(max=100).cpu())
        recs.append(rec.cpu().numpy())
    return np.concatenate(recs), {k: torch.cat(v).double().numpy() for k, v in values.items()}


def spread(values: np.ndarray, resamples: int = 2000, seed: int = 0) -> dict:
    """Standard deviation over clips and a bootstrap 95% interval of their mean."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    return {"std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]}


def side_by_side(clips: np.ndarray, recs: np.ndarray, every: int) -> np.ndarray:
    """Every ``every``-th clip as original | reconstruction | error x4, one after another: ``[T', H, W', 3]``."""
    from vqvideo.viz import video_grid

    parts = []
    for clip, rec in zip(clips[::every], recs[::every]):
        error = np.clip(np.abs(clip.astype(np.int16) - rec) * ERROR_GAIN, 0, 255).astype(np.uint8)
        parts.append(video_grid([np.stack([clip, rec, error])]))
    return np.concatenate(parts)


# --------------------------------------------------------------------------------------------- the command
def reconstruct(checkpoint: str | Path, videos: list[str | Path], out: str | Path, resolution: int | None = None,
                config_data=None, batch_size: int = 8, device: str = "auto") -> dict:
    """Reconstruct ``videos`` with the VQ-VAE of ``checkpoint``; write ``out`` (module docstring); return the
    contents of ``reconstruct.json``. ``resolution`` and ``config_data`` (a DataConfig): see :func:`data_params`."""
    from vqvideo.runtime.files import atomic_write_text
    from vqvideo.runtime.checkpoint import load_model
    from vqvideo.train.vqvae import build_vqvae
    from vqvideo.viz import save_gif, save_mp4

    out = Path(out)
    files = list_videos(videos)
    if not Path(checkpoint).is_file():
        raise ReconstructError(f"checkpoint not found: {checkpoint}")
    dev = choose_device(device)
    model, ckpt = load_model(checkpoint, build_vqvae, map_location=dev)
    if ckpt.get("kind", "vqvae") != "vqvae":
        raise ReconstructError(f"{checkpoint} holds a {ckpt.get('kind')!r} checkpoint, not a VQ-VAE")
    params, settings_source = data_params(resolution, config_data, ckpt.get("data_config"))
    every = math.ceil(params.frames / params.stride)
    entries, rejects, all_values, names = [], [], {k: [] for k in METRICS}, set()
    for path in files:
        clips, starts, _, reason = process_video(str(path), params)
        if clips is None:
            print(f"reconstruct: {path}: skipped: {reason}", file=sys.stderr)
            rejects.append({"path": str(path), "reason": reason})
            continue
        recs, values = reconstruct_clips(model, clips, batch_size, dev)
        name = _unique(path.stem if path.is_file() else path.name, names)
        video = side_by_side(clips, recs, every)
        save_mp4(video, out / f"{name}.mp4", fps=params.fps)
        save_gif(video, out / f"{name}.gif", fps=params.fps)
        entries.append({"path": str(path), "clips": len(clips), **{k: float(v.mean()) for k, v in values.items()},
                        "mp4": f"{name}.mp4", "gif": f"{name}.gif",
                        "clip_metrics": [{"start_s": round(s / params.fps, 6), **{k: float(values[k][i])
                                                                                  for k in METRICS}}
                                         for i, s in enumerate(starts)]})
        for k in METRICS:
            all_values[k].append(values[k])
        print(f"{path}: {len(clips)} clips, PSNR {values['psnr'].mean():.2f} dB, SSIM {values['ssim'].mean():.3f}",
              file=sys.stderr)
    if not entries:
        raise ReconstructError(f"no clip from any of the {len(files)} videos (the first: {rejects[0]['reason']})")
    joined = {k: np.concatenate(v) for k, v in all_values.items()}
    result = {"videos": entries, "mean": {k: float(v.mean()) for k, v in joined.items()},
              "clips": int(len(joined["psnr"])), "spread": {k: spread(v) for k, v in joined.items()},
              "settings": {"frames": params.frames, "fps": params.fps, "resolution": params.resolution,
                           "stride": params.stride, "max_clips_per_video": params.max_clips_per_video,
                           "source": settings_source},
              "checkpoint": str(checkpoint), "rejects": rejects}
    atomic_write_text(out / "reconstruct.json", json.dumps(result, indent=1) + "\n")
    return result


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when another video already has it."""
    candidate, i = name, 1
    while candidate in taken:
        i += 1
        candidate = f"{name}-{i}"
    taken.add(candidate)
    return candidate
