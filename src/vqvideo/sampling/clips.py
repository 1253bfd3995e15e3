"""Which clips are conditioned on, and where their frames live.

The evaluation split's clips (``evaluation.split``) in manifest order, at most ``sampling.max_clips`` of them.
A clip id is its 0-based row in ``results/data/manifest.csv``; the data stage writes the frames of row ``r``
to the shard named in its ``shard`` column, at position ``index``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np

from vqvideo.layout import Layout


def data_dir(results: str | Path) -> Path:
    return Layout(results).data


def read_manifest(results: str | Path) -> list[dict]:
    """Rows of the clip manifest, each with its clip id (``clip``, the 0-based row)."""
    path = data_dir(results) / "manifest.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):
        row["clip"] = i
    return rows


def evaluation_clips(results: str | Path, split: str, max_clips: int | None) -> list[dict]:
    """Manifest rows of ``split`` in manifest order, the first ``max_clips`` of them (all when None)."""
    rows = [r for r in read_manifest(results) if r["split"] == split]
    return rows if max_clips is None else rows[:max_clips]


def shard_path(results: str | Path, row: dict) -> Path:
    """The clip shard that holds ``row``: its ``shard`` column is a file name or a shard number."""
    name = str(row["shard"])
    folder = data_dir(results) / "shards"
    if name.isdigit():
        return folder / f"{row['split']}-{int(name):05d}.h5"
    return folder / Path(name).name


def shard_number(name: str) -> int:
    """``val-00003.h5`` (or ``3``) -> 3: the data stage numbers the shards of each split from 0."""
    stem = Path(str(name)).stem
    return int(stem.rsplit("-", 1)[-1])


def evaluation_groups(results: str | Path, split: str, max_clips: int | None) -> dict[int, list[dict]]:
    """{data shard number: its rows among the first ``max_clips`` of ``split``} for EVERY data shard of the split.

    A shard whose clips all fall beyond ``max_clips`` maps to [] (its sample shard is written empty, so that
    the shards of every stage stay numbered alike).
    """
    rows = [r for r in read_manifest(results) if r["split"] == split]
    kept = {r["clip"] for r in (rows if max_clips is None else rows[:max_clips])}
    groups: dict[int, list[dict]] = {}
    for row in rows:
        groups.setdefault(shard_number(row["shard"]), [])
        if row["clip"] in kept:
            groups[shard_number(row["shard"])].append(row)
    return dict(sorted(groups.items()))


def load_frames(results: str | Path, rows: list[dict]) -> np.ndarray:
    """The clips of ``rows`` as uint8 ``[N, T, H, W, 3]``, in the order of ``rows`` (read clip by clip)."""
    if not rows:
        raise ValueError("no clips to load")
    out = []
    for path, group in _by_path(results, rows):
        with h5py.File(path, "r") as f:
            out.extend((row["clip"], f["clips"][int(row["index"])]) for row in group)
    order = {row["clip"]: i for i, row in enumerate(rows)}
    return np.stack([frames for _, frames in sorted(out, key=lambda item: order[item[0]])])


def _by_path(results, rows):
    groups: dict[Path, list[dict]] = {}
    for row in rows:
        groups.setdefault(shard_path(results, row), []).append(row)
    return groups.items()
