"""Reconstruction quality (PSNR, SSIM) of uint8 videos, and codebook bit rates. Torch, any device.

Conventions: videos are uint8 ``[B, T, H, W, 3]`` (the shard layout) or float tensors on the 0-255 scale.
``psnr`` is computed per video (MSE over all its frames, pixels and channels, peak 255) and returned per
video; averaging per-video PSNRs is what video papers report. ``ssim`` is the standard SSIM of Wang et al.
(2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, peak 255, computed per frame and channel
without padding ("valid"), averaged over frames and channels, one value per video.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 255.0) -> torch.Tensor:
    """PSNR in dB per video ``[B]`` of ``a`` vs ``b`` ``[B, ...]`` (identical videos give +inf)."""
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]  # [1, 1, size, size]


def ssim(a: torch.Tensor, b: torch.Tensor, peak: float = 255.0, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """SSIM per video ``[B]`` of videos ``[B, T, H, W, C]`` (frames smaller than the window use the frame size)."""
    B, T, H, W, C = a.shape
    size = min(size, H, W)
    # every (video, frame, channel) becomes one grey image [B*T*C, 1, H, W]
    x = a.double().permute(0, 1, 4, 2, 3).reshape(B * T * C, 1, H, W)
    y = b.double().permute(0, 1, 4, 2, 3).reshape(B * T * C, 1, H, W)
    # the 2-D Gaussian window is the outer product of a 1-D one: filtering the columns, then the rows, gives
    # the same values (to ~1e-16) with 11 + 11 taps instead of 121, ~4x faster in float64 on CPU
    g = _gaussian_window(size, sigma, x.device).sum(dim=3, keepdim=True)  # [1, 1, size, 1]

    def w(img):
        return F.conv2d(F.conv2d(img, g), g.transpose(2, 3))

    mu_x, mu_y = w(x), w(y)
    var_x = w(x * x) - mu_x ** 2
    var_y = w(y * y) - mu_y ** 2
    cov = w(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return s.reshape(B, -1).mean(1)


def latent_bits(shapes: dict[str, list[int]], codebook_size: int) -> int:
    """Bits of one clip's codes: positions of all levels times log2(codebook size)."""
    positions = sum(math.prod(s) for s in shapes.values())
    return int(round(positions * math.log2(codebook_size)))


def raw_bits(frames: int, height: int, width: int, channels: int = 3, depth: int = 8) -> int:
    """Bits of one clip as raw 8-bit video."""
    return frames * height * width * channels * depth


def bits_ratio(shapes: dict[str, list[int]], codebook_size: int, frames: int, height: int, width: int) -> float:
    """Latent bits / raw bits (the paper reports 1.3% for 16x256x256 with codebooks of 512)."""
    return latent_bits(shapes, codebook_size) / raw_bits(frames, height, width)
