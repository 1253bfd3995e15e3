"""Reading the data stage's output: the clip manifest, a torch Dataset over the clip shards, clips by id.

Layout (written by :mod:`vqvideo.data.prepare`): ``DATA/manifest.csv`` with one row per clip
(``shard,index,source,start_s,label,split``; a clip's id is its 0-based row) and ``DATA/shards/{shard}`` holding
dataset ``clips`` uint8 ``[N, T, H, W, 3]``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from vqvideo.layout import MANIFEST, SHARDS


def read_manifest(path: str | Path) -> list[dict]:
    """Rows of ``manifest.csv`` (``path`` is the file or its data folder), typed: ``index`` int, ``start_s``
    float, and ``clip`` (the row number, i.e. the clip id) added."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):
        row["index"] = int(row["index"])
        row["start_s"] = float(row["start_s"])
        row["clip"] = i
    return rows


class ClipDataset(Dataset):
    """The clips of one split, in manifest order. ``ds[i]`` is a uint8 tensor ``[T, H, W, 3]`` (RGB, 0-255).

    ``ds.clip_ids[i]`` is the clip id (manifest row) of item ``i``. HDF5 files are opened lazily, once per
    process, so the Dataset works with ``DataLoader(num_workers > 0)`` (h5py handles must not cross a fork).
    """

    def __init__(self, data_dir: str | Path, split: str):
        self.data_dir = Path(data_dir)
        self.split = split
        rows = [r for r in read_manifest(self.data_dir) if r["split"] == split]
        self.clip_ids = [r["clip"] for r in rows]
        self._items = [(r["shard"], r["index"]) for r in rows]
        self._files: dict[str, h5py.File] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self._items)

    def _file(self, shard: str) -> h5py.File:
        if self._pid != os.getpid():  # a new worker process: never reuse the parent's handles
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(shard)
        if f is None:
            f = self._files[shard] = h5py.File(self.data_dir / SHARDS / shard, "r")
        return f

    def __getitem__(self, i: int) -> torch.Tensor:
        shard, index = self._items[i]
        return torch.from_numpy(self._file(shard)["clips"][index])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_files"], state["_pid"] = {}, None  # open handles do not pickle (spawned workers)
        return state


def shard_file(data_dir: str | Path, row: dict) -> Path:
    """The clip shard that holds manifest ``row``: its ``shard`` column is a file name (or a shard number)."""
    name = str(row["shard"])
    folder = Path(data_dir) / SHARDS
    if name.isdigit():
        return folder / f"{row['split']}-{int(name):05d}.h5"
    return folder / Path(name).name


def read_rows(data_dir: str | Path, rows: list[dict]) -> np.ndarray:
    """The clips of manifest ``rows`` as uint8 ``[N, T, H, W, 3]``, in the order of ``rows`` (each shard opened
    once); ``[0]`` when ``rows`` is empty."""
    by_shard: dict[Path, list[tuple[int, int]]] = {}
    for pos, row in enumerate(rows):
        by_shard.setdefault(shard_file(data_dir, row), []).append((pos, int(row["index"])))
    out = None
    for path, items in by_shard.items():
        with h5py.File(path, "r") as f:
            clips = f["clips"]
            if out is None:
                out = np.empty((len(rows), *clips.shape[1:]), np.uint8)
            for pos, index in items:
                out[pos] = clips[index]
    return out if out is not None else np.zeros((0,), np.uint8)


class ClipReader:
    """Real clips by id (manifest row) from the data folder ``data_dir``, the manifest read once (Kinetics has
    ~400k rows)."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self.rows = read_manifest(self.data_dir)

    def __call__(self, clip_ids) -> np.ndarray:
        """uint8 ``[n, T, H, W, 3]`` in the order of ``clip_ids``."""
        return read_rows(self.data_dir, [self.rows[int(c)] for c in clip_ids])


def load_clips(data_dir: str | Path, rows: list[int]) -> np.ndarray:
    """Clips by id (manifest row) as uint8 ``[N, T, H, W, 3]``, in the order of ``rows``."""
    return ClipReader(data_dir)(rows)
