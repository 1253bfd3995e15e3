"""Fréchet Video Distance (Unterthiner et al. 2018), faithful to the original TensorFlow code.

- :func:`i3d_logits`: uint8 videos -> I3D ``Logits`` (400 per video). Frames are resized to 224x224 with
  TensorFlow 1 ``resize_bilinear`` semantics (``align_corners=False`` and no half-pixel centres: source
  coordinate = dst * in / out, float32, no antialiasing; PyTorch's ``interpolate`` differs by up to ~0.2 in
  the logits), then scaled by ``2 * x / 255 - 1``.
- :func:`frechet_distance`: tfgan's ``frechet_classifier_distance_from_activations`` in float64 with unbiased
  (N - 1) covariances; the matrix square root comes from ``scipy.linalg.sqrtm``, and where that is not finite
  or not (almost) real, from tfgan's own symmetric formula.
"""

from __future__ import annotations

import warnings
from typing import Iterable

import numpy as np
import scipy.linalg
import torch
from tqdm.auto import tqdm

from vqvideo.runtime.device import choose_device
from vqvideo.errors import UserError
from vqvideo.metrics.i3d import INPUT_SIZE, MIN_FRAMES, load_i3d

FEATURE_DIM = 400


class FVDInputError(UserError, ValueError):
    """Videos or features that FVD cannot be computed from (the message says why)."""


# ------------------------------------------------------------------------------------------- resizing
def _tf1_coords(n_in: int, n_out: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Low index, high index and fraction of TF1 legacy bilinear sampling along one axis (float32)."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = torch.arange(n_out, dtype=torch.float32, device=device) * torch.tensor(scale, dtype=torch.float32)
    lo = torch.floor(src)
    frac = src - lo
    lo = lo.long()
    hi = torch.clamp(lo + 1, max=n_in - 1)
    return lo, hi, frac


def resize_bilinear_tf1(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``tf.image.resize_bilinear(frames, size)`` (align_corners=False, half_pixel_centers=False).

    frames: ``[N, H, W, C]`` (any dtype; computed in float32) -> float32 ``[N, size[0], size[1], C]``.
    """
    x = frames.to(torch.float32)
    h_in, w_in = x.shape[1:3]
    y0, y1, fy = _tf1_coords(h_in, size[0], x.device)
    x0, x1, fx = _tf1_coords(w_in, size[1], x.device)
    # TF's order of operations: top = tl + (tr - tl) * x_lerp (likewise bottom), then top + (bottom - top) *
    # y_lerp. The x-lerp of an input row does not depend on the output row, so it is done once per input row
    # (the same arithmetic on the same values: bit-identical to doing it per output row, and cheaper)
    left, right = x[:, :, x0], x[:, :, x1]
    rows = left + (right - left) * fx.view(1, 1, -1, 1)  # [N, H_in, w, C]
    top, bottom = rows[:, y0], rows[:, y1]
    return top + (bottom - top) * fy.view(1, -1, 1, 1)


def downscale_area(videos: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 ``[N, T, H, W, 3]`` -> uint8 ``[N, T, R, R, 3]`` by area averaging, rounded (not truncated).

    The paper's 64x64 comparison downsamples its 256x256 clips to 64x64 first (as the 64x64 Kinetics models
    were trained on), and only then resizes to the I3D input; box filtering is the alias-free way to do it.
    """
    n, t, h, w, c = videos.shape
    if (h, w) == (resolution, resolution):
        return videos
    x = torch.from_numpy(np.ascontiguousarray(videos)).reshape(n * t, h, w, c).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="area")
    x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return x.reshape(n, t, resolution, resolution, c).numpy()


def preprocess(videos: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, T, H, W, 3]`` -> float32 ``[B, T, 224, 224, 3]`` in [-1, 1], as the original FVD does."""
    b, t, h, w, c = videos.shape
    frames = resize_bilinear_tf1(videos.reshape(b * t, h, w, c), (INPUT_SIZE, INPUT_SIZE))
    return (2.0 * frames / 255.0 - 1.0).reshape(b, t, INPUT_SIZE, INPUT_SIZE, c)


# ------------------------------------------------------------------------------------------- features
def check_videos(videos) -> None:
    """Refuse what FVD must not silently take: wrong rank, channels, dtype (range) or too few frames."""
    shape = tuple(videos.shape)
    if len(shape) != 5 or shape[-1] != 3:
        raise FVDInputError(f"videos must be [N, T, H, W, 3], got shape {list(shape)}")
    if np.dtype(videos.dtype) != np.uint8:
        raise FVDInputError(f"videos must be uint8 in [0, 255] (round generated frames, do not truncate), "
                            f"got {videos.dtype}")
    if shape[1] < MIN_FRAMES:
        raise FVDInputError(f"I3D needs at least {MIN_FRAMES} frames per video, got {shape[1]} "
                            f"(with fewer its final temporal pool is empty and the original returns NaN)")


def default_device() -> torch.device:
    return choose_device("auto")


def i3d_logits(videos, batch_size: int = 8, device: str | torch.device | None = None,
               resolution: int | None = None, progress: bool = True, model=None) -> np.ndarray:
    """I3D logits of uint8 videos ``[N, T, H, W, 3]`` (a numpy array or anything sliceable like it, e.g. an
    h5py dataset) -> float32 ``[N, 400]``.

    ``resolution``: first downscale frames to ``resolution``x``resolution`` (:func:`downscale_area`), as the
    paper's 64x64 comparison does. On CUDA, TF32 is disabled: it moves the logits by more than the tolerance.
    """
    check_videos(videos)
    device = torch.device(device) if device is not None else default_device()
    model = model if model is not None else load_i3d(device)
    n = len(videos)
    out = np.empty((n, FEATURE_DIM), np.float32)
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, n, batch_size), desc="I3D", unit="batch", disable=not progress,
                              leave=False):
                batch = np.asarray(videos[start:start + batch_size])
                if resolution is not None:
                    batch = downscale_area(batch, resolution)
                x = preprocess(torch.from_numpy(np.ascontiguousarray(batch)).to(device))
                out[start:start + len(batch)] = model(x).float().cpu().numpy()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    if not np.isfinite(out).all():
        raise FVDInputError("I3D produced non-finite logits")
    return out


def i3d_logits_many(sources: Iterable, **kwargs) -> np.ndarray:
    """Logits of several video arrays (e.g. one per shard), concatenated."""
    feats = [i3d_logits(v, **kwargs) for v in sources]
    return np.concatenate(feats) if feats else np.empty((0, FEATURE_DIM), np.float32)


# ------------------------------------------------------------------------------------------- distance
def _tfgan_trace_sqrt_product(sigma: np.ndarray, sigma_w: np.ndarray) -> float:
    """tfgan's trace(sqrt(sigma sigma_w)) via symmetric square roots from the SVD (eigenvalues < 1e-10 kept
    as they are, not square-rooted, as tfgan does)."""

    def sym_sqrt(mat, eps=1e-10):
        u, s, vt = np.linalg.svd(mat)
        si = np.where(s < eps, s, np.sqrt(s))
        return (u * si) @ vt

    root = sym_sqrt(sigma)
    return float(np.trace(sym_sqrt(root @ sigma_w @ root)))


def trace_sqrt_product(sigma: np.ndarray, sigma_w: np.ndarray) -> float:
    """trace(sqrt(sigma @ sigma_w)) with ``scipy.linalg.sqrtm``.

    The product of two PSD matrices has a real non-negative spectrum, so a complex result only carries
    rounding noise: imaginary parts up to 1e-3 of the largest real entry are dropped. Where sqrtm fails
    (not finite, or a larger imaginary part, which near-singular covariances can cause) the value comes from
    tfgan's symmetric formula, which is what the reference computes.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on singular products; we check the result ourselves
        root = scipy.linalg.sqrtm(sigma @ sigma_w)
    if isinstance(root, tuple):  # older scipy with disp=False semantics
        root = root[0]
    ok = np.isfinite(root).all()
    if ok and np.iscomplexobj(root):
        scale = max(float(np.abs(root.real).max()), 1.0)
        ok = float(np.abs(root.imag).max()) <= 1e-3 * scale
        root = root.real
    if not ok:
        warnings.warn("scipy.linalg.sqrtm was inaccurate (near-singular covariances); using tfgan's "
                      "symmetric square root", RuntimeWarning, stacklevel=2)
        return _tfgan_trace_sqrt_product(sigma, sigma_w)
    return float(np.trace(root))


def check_features(feats: np.ndarray, name: str) -> np.ndarray:
    feats = np.asarray(feats)
    if feats.ndim != 2:
        raise FVDInputError(f"{name}: features must be [N, D], got shape {list(feats.shape)}")
    if feats.shape[0] < 2:
        raise FVDInputError(f"{name}: a covariance needs at least 2 videos, got {feats.shape[0]}")
    if not np.isfinite(feats).all():
        raise FVDInputError(f"{name}: features contain NaN or inf")
    return feats.astype(np.float64)


def is_rank_deficient(n: int, dim: int = FEATURE_DIM) -> bool:
    """With N <= D videos the D x D covariance has rank at most N - 1 < D."""
    return n <= dim


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FVD between two feature sets ``[N_a, D]`` and ``[N_b, D]`` (float64, unbiased covariances).

    Warns (and still computes, as the reference does) when a set has N <= D videos: its covariance is then
    rank-deficient and the FVD is biased upwards and noisy; compare such values only at equal N.
    """
    a = check_features(feats_a, "first set")
    b = check_features(feats_b, "second set")
    if a.shape[1] != b.shape[1]:
        raise FVDInputError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    for name, f in (("first", a), ("second", b)):
        if is_rank_deficient(len(f), f.shape[1]):
            warnings.warn(f"FVD: the {name} set has {len(f)} videos <= {f.shape[1]} features: its covariance "
                          f"is rank-deficient; the value is only comparable at the same N", UserWarning,
                          stacklevel=2)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a = np.atleast_2d(np.cov(a, rowvar=False))
    sigma_b = np.atleast_2d(np.cov(b, rowvar=False))
    trace = np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_sqrt_product(sigma_a, sigma_b)
    return float(trace + np.sum((mu_a - mu_b) ** 2))


def fvd(real, fake, **kwargs) -> float:
    """FVD between two uint8 video sets ``[N, T, H, W, 3]`` (kwargs go to :func:`i3d_logits`)."""
    return frechet_distance(i3d_logits(real, **kwargs), i3d_logits(fake, **kwargs))
