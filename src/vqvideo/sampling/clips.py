"""Which clips are conditioned on, and where their frames live.

The evaluation split's clips (``evaluation.split``) in manifest order, at most ``sampling.max_clips`` of them.
A clip id is its 0-based row in the data folder's ``manifest.csv`` (``RESULTS/data``); the data stage writes the
frames of row ``r`` to the shard named in its ``shard`` column, at position ``index``. ``data`` below is that
data folder (the folder of the manifest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vqvideo.data.datasets import read_manifest, read_rows
from vqvideo.errors import NO_RESULT, UserError


class SamplingError(UserError, ValueError):
    """Nothing to sample or copy: no clip of the split, a shard that does not exist, paths without a shard."""

    exit_code = NO_RESULT


def evaluation_clips(data: str | Path, split: str, max_clips: int | None) -> list[dict]:
    """Manifest rows of ``split`` in manifest order, the first ``max_clips`` of them (all when None)."""
    rows = [r for r in read_manifest(data) if r["split"] == split]
    return rows if max_clips is None else rows[:max_clips]


def shard_number(name: str) -> int:
    """``val-00003.h5`` (or ``3``) -> 3: the data stage numbers the shards of each split from 0."""
    stem = Path(str(name)).stem
    return int(stem.rsplit("-", 1)[-1])


def evaluation_groups(data: str | Path, split: str, max_clips: int | None) -> dict[int, list[dict]]:
    """{data shard number: its rows among the first ``max_clips`` of ``split``} for EVERY data shard of the split.

    A shard whose clips all fall beyond ``max_clips`` maps to [] (its sample shard is written empty, so that
    the shards of every stage stay numbered alike).
    """
    rows = [r for r in read_manifest(data) if r["split"] == split]
    kept = {r["clip"] for r in (rows if max_clips is None else rows[:max_clips])}
    groups: dict[int, list[dict]] = {}
    for row in rows:
        groups.setdefault(shard_number(row["shard"]), [])
        if row["clip"] in kept:
            groups[shard_number(row["shard"])].append(row)
    return dict(sorted(groups.items()))


def load_frames(data: str | Path, rows: list[dict]) -> np.ndarray:
    """The clips of ``rows`` as uint8 ``[N, T, H, W, 3]``, in the order of ``rows``."""
    if not rows:
        raise ValueError("no clips to load")
    return read_rows(data, rows)
