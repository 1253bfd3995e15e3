"""Atomic, self-describing checkpoints (loadable with ``torch.load(weights_only=True)``).

A checkpoint is a dict of tensors and plain values:

    kind          "vqvae" | "top_prior" | "bottom_prior" | ... (str)
    model         the unwrapped model's state_dict (parameters and buffers, e.g. EMA codebooks)
    model_config  plain dict that rebuilds the model: ``build(model_config)`` (see :func:`load_model`)
    train_config  plain dict of the TrainConfig it was trained with
    step          optimiser steps taken (int)
    optimizer     optimiser state_dict
    rng           list, one entry per rank, of {"torch", "cuda", "numpy", "python"} RNG states (tensors/plain)
    data          position in the training index stream ({"seed", "position", "n"}; see harness.IndexStream)
    data_config   (optional) plain dict of the data settings it was trained on; a VQ-VAE's holds ``frames``,
                  ``fps``, ``resolution``, ``stride``, ``max_clips_per_video``, ``frame_folder_fps``

Writes go to a temporary file beside the target, which is flushed, fsynced and renamed over the target
(``os.replace`` is atomic on POSIX), and then the directory is fsynced, so a process killed at any moment
leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from vqvideo.runtime.files import atomic_path


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temp file in the same directory, fsync, rename, fsync dir)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer that was killed
        stale.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``: tensors and plain containers only)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def load_model(path: str | Path, build: Callable[[dict], nn.Module],
               map_location: Any = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint: ``build(ckpt["model_config"])``, load its weights, ``eval()``.

    Returns ``(model, checkpoint dict)``.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    model = build(ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model.to(map_location)
    return model.eval(), ckpt


# --------------------------------------------------------------------------------------------- RNG state
def rng_state() -> dict:
    """This process's RNG states (torch CPU, its current CUDA device, numpy, python): tensors and plain values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        # this process's GPU only (one GPU per process); other GPUs' contexts stay untouched
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss": py_state[2]},
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's and python's global RNGs."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)

