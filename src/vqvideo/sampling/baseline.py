"""The copy-last baseline: the last conditioning frame held still for the 12 predicted frames.

It is what a predictor that knows nothing about motion does; evaluation and the human-eval export read it like
any other sample set. Shards follow the data shards of the evaluation split (shard ``i`` holds the kept
evaluation clips of data shard ``{split}-{i:05d}.h5``), the layout of the prior's sample shards: ``videos`` uint8
``[N, 16, H, W, 3]``, ``clip`` int64, ``sample`` int64 (always 0: the baseline is deterministic), attrs
``seed``, ``temperature``, ``method``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from vqvideo.config import Config
from vqvideo.data.shards import write_shard
from vqvideo.layout import data_shard
from vqvideo.sampling.clips import SamplingError, load_frames, selected_groups


def copy_last(clips: np.ndarray, cond_frames: int) -> np.ndarray:
    """``clips`` [N, T, H, W, 3] -> the same with frames ``cond_frames..T-1`` replaced by frame ``cond_frames-1``."""
    videos = np.array(clips, copy=True)
    videos[:, cond_frames:] = clips[:, cond_frames - 1 : cond_frames]
    return videos


def run_copy_last(cfg: Config, shard: int | None = None, manifest: str | Path | None = None,
                  out: str | Path | None = None) -> list[Path]:
    """Write the baseline's shard ``shard`` (every shard when None); return the paths written or kept.

    Shard ``i`` holds the kept evaluation clips of data shard ``{split}-{i:05d}.h5`` (possibly none), read through
    ``manifest`` (default: the layout's). ``out`` is the shard's path (only with ``shard``; default: the layout's).
    A shard that already exists is kept (a rerun after an interruption only writes what is missing).
    """
    split = cfg.evaluation.split
    data = Path(manifest).parent if manifest else cfg.layout.data
    groups = selected_groups(cfg, data)
    if not groups:
        raise SamplingError(f"no clips of split {split!r} in the manifest")
    if shard is not None and shard not in groups:
        raise SamplingError(f"shard {shard} asked for; the data shards of split {split!r} are {sorted(groups)}")
    if out is not None and shard is None:
        raise SamplingError("an output path needs a shard number")
    written = []
    for i in groups if shard is None else [shard]:
        path = Path(out) if out is not None else cfg.layout.copy_last_shard(i)
        if not path.exists():
            rows = groups[i]
            if rows:
                videos = copy_last(load_frames(data, rows), cfg.sampling.cond_frames)
            else:
                with h5py.File(data_shard(data, split, i), "r") as f:
                    videos = np.zeros((0, *f["clips"].shape[1:]), dtype=np.uint8)
            write_shard(
                path,
                {
                    "videos": videos,
                    "clip": np.array([r["clip"] for r in rows], dtype=np.int64),
                    "sample": np.zeros(len(rows), dtype=np.int64),
                },
                {"seed": cfg.sampling.seed, "temperature": 0.0, "method": "copy-last",
                 "cond_frames": cfg.sampling.cond_frames, "config_hash": cfg.hash},
            )
        written.append(path)
    return written
