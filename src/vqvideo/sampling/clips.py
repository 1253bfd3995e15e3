"""Which clips are conditioned on, and where their frames live.

At most ``sampling.max_clips`` clips of the evaluation split (``evaluation.split``), spread out
(:func:`spread_order`): every source video gives its first clip before any video gives a second, and a video's
clips that do not overlap in time come before those that do, so a few dozen clips cover every video instead of
the first three (a clip and its half-overlapping neighbour add little). A clip id is its 0-based row in the data folder's ``manifest.csv`` (``RESULTS/data``); the data stage writes the
frames of row ``r`` to the shard named in its ``shard`` column, at position ``index``. ``data`` below is that
data folder (the folder of the manifest).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from vqvideo.data.datasets import read_manifest, read_rows
from vqvideo.errors import NO_RESULT, UserError


class SamplingError(UserError, ValueError):
    """Nothing to sample or copy: no clip of the split, a shard that does not exist, paths without a shard."""

    exit_code = NO_RESULT


def _non_overlapping_first(rows: list[dict], clip_seconds: float | None) -> list[dict]:
    """One video's clips: a greedy set of clips that do not overlap (in time order), then such a set of the
    rest, and so on. ``clip_seconds`` None: every clip counts as overlapping none."""
    left = sorted(rows, key=lambda r: float(r["start_s"]))
    out = []
    while left:
        taken, end, rest = [], -float("inf"), []
        for row in left:
            start = float(row["start_s"])
            if clip_seconds is None or start >= end - 1e-6:  # 1e-6: starts are rounded in the manifest
                taken.append(row)
                end = start + (clip_seconds or 0.0)
            else:
                rest.append(row)
        out.extend(taken)
        left = rest
    return out


def spread_order(rows: list[dict], clip_seconds: float | None) -> list[dict]:
    """``rows`` (one split's manifest rows) in the order clips are taken for evaluation: round ``k`` takes the
    ``k``-th clip of every source video (:func:`_non_overlapping_first` order), the videos in a fixed order
    that does not follow the manifest's (which lists Kinetics by label): sha256 of the source path."""
    by_video: dict[str, list[dict]] = {}
    for row in rows:
        by_video.setdefault(str(row["source"]), []).append(row)
    videos = sorted(by_video, key=lambda v: hashlib.sha256(v.encode()).hexdigest())
    queues = [_non_overlapping_first(by_video[v], clip_seconds) for v in videos]
    longest = max((len(q) for q in queues), default=0)
    return [q[k] for k in range(longest) for q in queues if k < len(q)]


def evaluation_clips(data: str | Path, split: str, max_clips: int | None,
                     clip_seconds: float | None = None) -> list[dict]:
    """Manifest rows of ``split`` taken for evaluation (the first ``max_clips`` in :func:`spread_order`; all
    when None), in manifest order. ``clip_seconds``: a clip's duration (``data.frames / data.fps``)."""
    rows = [r for r in read_manifest(data) if r["split"] == split]
    if max_clips is not None:
        kept = {r["clip"] for r in spread_order(rows, clip_seconds)[:max_clips]}
        rows = [r for r in rows if r["clip"] in kept]
    return rows


def shard_number(name: str) -> int:
    """``val-00003.h5`` (or ``3``) -> 3: the data stage numbers the shards of each split from 0."""
    stem = Path(str(name)).stem
    return int(stem.rsplit("-", 1)[-1])


def evaluation_groups(data: str | Path, split: str, max_clips: int | None,
                      clip_seconds: float | None = None) -> dict[int, list[dict]]:
    """{data shard number: its rows among :func:`evaluation_clips`} for EVERY data shard of the split.

    A shard none of whose clips is taken maps to [] (its sample shard is written empty, so that the shards of
    every stage stay numbered alike).
    """
    kept = {r["clip"] for r in evaluation_clips(data, split, max_clips, clip_seconds)}
    groups: dict[int, list[dict]] = {}
    for row in read_manifest(data):
        if row["split"] != split:
            continue
        groups.setdefault(shard_number(row["shard"]), [])
        if row["clip"] in kept:
            groups[shard_number(row["shard"])].append(row)
    return dict(sorted(groups.items()))


def selected_groups(cfg, data: str | Path) -> dict[int, list[dict]]:
    """:func:`evaluation_groups` of the data folder ``data`` with a config's settings: the clips both samplers
    and the baseline take."""
    return evaluation_groups(data, cfg.evaluation.split, cfg.sampling.max_clips, cfg.data.frames / cfg.data.fps)


def load_frames(data: str | Path, rows: list[dict]) -> np.ndarray:
    """The clips of ``rows`` as uint8 ``[N, T, H, W, 3]``, in the order of ``rows``."""
    if not rows:
        raise ValueError("no clips to load")
    return read_rows(data, rows)
