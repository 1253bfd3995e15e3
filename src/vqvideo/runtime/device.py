"""The one place a device is chosen: ``auto`` is CUDA when available, unless ``VQVIDEO_DEVICE`` says otherwise."""

from __future__ import annotations

import os

import torch


def choose_device(name: str = "auto") -> torch.device:
    """``name`` ("auto", "cpu", "cuda", "cuda:1", ...) as a device. ``auto`` is ``VQVIDEO_DEVICE`` when set
    (e.g. ``cpu`` on a machine whose GPU is busy), else CUDA when available, else the CPU."""
    if name == "auto":
        name = os.environ.get("VQVIDEO_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
