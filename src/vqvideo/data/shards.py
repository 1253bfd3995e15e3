"""Atomic HDF5 shards: the storage contract between stages.

Every shard is written to a temporary name beside its final path, flushed and fsynced, then renamed, so a
reader never sees a half-written shard and a killed job leaves either the old state or the finished shard.
Datasets with a leading sample axis are chunked one sample per chunk (random access for Datasets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from vqvideo.runtime.files import atomic_path


def write_shard(path: str | Path, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None,
                compression: str | None = None) -> Path:
    """Write ``arrays`` (each ``[N, ...]``) and ``attrs`` to ``path`` atomically; return the path.

    ``compression`` (e.g. ``"lzf"``) applies to arrays with more than one dimension.
    """
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            chunks = (1, *arr.shape[1:]) if arr.ndim > 1 and arr.shape[0] > 0 else None
            f.create_dataset(name, data=arr, chunks=chunks,
                             compression=compression if arr.ndim > 1 and arr.shape[0] > 0 else None)
        for key, value in (attrs or {}).items():
            f.attrs[key] = "" if value is None else value
    return path


def read_shard(path: str | Path, names: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read whole datasets (all, or ``names``) and the attrs of one shard into memory."""
    with h5py.File(path, "r") as f:
        keys = names if names is not None else list(f.keys())
        return {k: f[k][()] for k in keys}, dict(f.attrs)


def shard_length(path: str | Path, name: str) -> int:
    with h5py.File(path, "r") as f:
        return int(f[name].shape[0])


def list_shards(folder: str | Path, pattern: str = "*.h5") -> list[Path]:
    """Finished shards in ``folder`` (temporary files start with a dot and are never listed), sorted."""
    return sorted(p for p in Path(folder).glob(pattern) if not p.name.startswith("."))

