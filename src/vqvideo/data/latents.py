"""``LatentDataset``: the priors' training data, read from the latent shards ``vqvideo encode`` writes.

Layout: ``{latent_dir}/{split}/shard-*.h5`` with ``top``, ``bottom``, ``cond_top``, ``cond_bottom`` (int16)
and ``clip`` (int64); see :mod:`vqvideo.encode`. Priors never decode video. A shard encoded with ``--mirror``
(``encode.mirror_train``) holds every clip twice, as it is and flipped left-right: one item per row, so such a
split counts each clip twice.

Safe with DataLoader workers: HDF5 files are opened lazily in the process that reads them (a handle opened
before a fork is never used after it), and the index is plain Python data.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from vqvideo.data.shards import list_shards

FIELDS = ("top", "bottom", "cond_top", "cond_bottom")


class LatentDataset(Dataset):
    """One item per clip: ``{"top": [t, h, w], "bottom": [T', H', W'], "cond_top": [1, h, w],
    "cond_bottom": [2, H', W']`` (int64 tensors, paper sizes ``[4, 32, 32]``, ``[8, 64, 64]``,
    ``[1, 32, 32]``, ``[2, 64, 64]``), ``"clip"``: 0-d int64 (the clip's manifest row)}.

    ``latent_dir`` is the folder holding one subfolder per split (``results/latents``).
    """

    def __init__(self, latent_dir: str | Path, split: str):
        self.shards = list_shards(Path(latent_dir) / split, "shard-*.h5")
        if not self.shards:
            raise FileNotFoundError(f"no latent shards in {Path(latent_dir) / split} (run vqvideo encode)")
        self.index: list[tuple[int, int]] = []
        for s, path in enumerate(self.shards):
            with h5py.File(path, "r") as f:
                self.index.extend((s, i) for i in range(f["top"].shape[0]))
        self._files: dict[int, h5py.File] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.index)

    def _file(self, s: int) -> h5py.File:
        if self._pid != os.getpid():  # first use in this process (e.g. a new DataLoader worker)
            self._files, self._pid = {}, os.getpid()
        if s not in self._files:
            self._files[s] = h5py.File(self.shards[s], "r")
        return self._files[s]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, row = self.index[i]
        f = self._file(s)
        item = {k: torch.from_numpy(f[k][row].astype(np.int64)) for k in FIELDS}
        item["clip"] = torch.tensor(int(f["clip"][row]), dtype=torch.int64)
        return item

    def __getstate__(self):  # pickled into spawned workers: without open handles
        state = self.__dict__.copy()
        state["_files"], state["_pid"] = {}, None
        return state
