"""Hierarchical video VQ-VAE (paper section 3.1 and Table 3), in the style of VQ-VAE-2.

Shapes for the paper configuration (``x`` is ``[B, 3, 16, 256, 256]``, float in [-1, 1]):

    encoder, first stage   conv 4x8x8 / stride 2x4x4, conv 3, residual stack  -> h_b [B, hidden, 8, 64, 64]
    encoder, second stage  conv 4x4x4 / stride 2x2x2, conv 3, residual stack  -> h_t [B, hidden, 4, 32, 32]
    quantize top           1x1x1 conv to D, EMA codebook (K codes)            -> top [B, 4, 32, 32]
    top decoder            conv 3, residual stack, transposed conv 4x4x4 / 2x2x2 -> u [B, D, 8, 64, 64]
    quantize bottom        1x1x1 conv of concat(h_b, u) to D, EMA codebook     -> bottom [B, 8, 64, 64]
    decoder                concat(top decoded, bottom latents) [B, 2D, 8, 64, 64], conv 3, residual stack,
                           transposed conv 4x8x8 / stride 2x4x4                -> [B, 3, 16, 256, 256]

Choices the paper leaves open (config/config.yaml says why): one strided conv per stage as in Table 3 with
padding (kernel - stride) / 2 so every size divides exactly; no normalisation layers (as VQ-VAE-2); as in
VQ-VAE-2 the bottom quantizer sees the first-stage features together with the decoded top level
(``bottom_sees_top``), so the bottom codes refine what the top codes already say; during training the bottom latents in the decoder
input are zeroed for a random ``bottom_mask_rate`` share of the clips, so the decoder learns to reconstruct
from the top level alone (``reconstruct(x, mask_bottom=True)`` shows what the top level carries).

The model takes plain arguments (``VQVAE(**model_config)``); it never reads files or configs.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vqvideo.models.quantizer import EMAQuantizer


def _same_padding(kernel: Sequence[int], stride: Sequence[int]) -> tuple[int, ...]:
    """Padding that makes a strided conv divide each size by its stride exactly (and its transpose invert it)."""
    pad = []
    for k, s in zip(kernel, stride):
        if (k - s) % 2 or k < s:
            raise ValueError(f"kernel {list(kernel)} and stride {list(stride)}: each kernel - stride must be even and >= 0")
        pad.append((k - s) // 2)
    return tuple(pad)


class TimeConv3d(nn.Module):
    """Conv3d whose time axis is padded explicitly: ``causal`` pads ``kernel_t - stride_t`` steps on the left only
    (an output then sees inputs up to the end of its own stride block, never later ones), otherwise
    ``(kernel_t - stride_t) / 2`` on each side; ``time_padding`` "zeros" or "replicate" (the edge timestep
    repeated: a static scene then looks static at the clip's first timestep too). Height and width are zero
    padded by ``(kernel - stride) / 2`` as before. ``[B, c_in, T, H, W] -> [B, c_out, T / stride_t, H', W']``."""

    def __init__(self, c_in, c_out, kernel, stride=(1, 1, 1), causal=False, time_padding="zeros"):
        super().__init__()
        kernel, stride = _triple(kernel), _triple(stride)
        pad = _same_padding(kernel, stride)
        self.time_pad = (kernel[0] - stride[0], 0) if causal else (pad[0], pad[0])
        self.mode = "constant" if time_padding == "zeros" else "replicate"
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride, (0, pad[1], pad[2]))

    @property
    def weight(self):
        return self.conv.weight

    def forward(self, x):
        if any(self.time_pad):
            x = F.pad(x, (0, 0, 0, 0, *self.time_pad), mode=self.mode)
        return self.conv(x)


class TimeConvTranspose3d(nn.Module):
    """Transposed conv multiplying each size by its stride. ``causal``: the input is padded on the left by
    ``ceil((kernel_t - stride_t) / stride_t)`` timesteps (``time_padding``), the outputs those produce alone and
    the last ``kernel_t - stride_t`` are cut, so output timestep ``o`` depends only on input timesteps
    ``<= o // stride_t`` (its own block and earlier); otherwise ``(kernel - stride) / 2`` padding as usual."""

    def __init__(self, c_in, c_out, kernel, stride, causal=False, time_padding="zeros"):
        super().__init__()
        kernel, stride = _triple(kernel), _triple(stride)
        pad = _same_padding(kernel, stride)
        self.causal, self.stride_t = causal, stride[0]
        self.left = -(-(kernel[0] - stride[0]) // stride[0])
        self.mode = "constant" if time_padding == "zeros" else "replicate"
        self.up = nn.ConvTranspose3d(c_in, c_out, kernel, stride, (0, pad[1], pad[2]) if causal else pad)

    def forward(self, h):
        if not self.causal:
            return self.up(h)
        t, s = h.shape[2], self.stride_t
        out = self.up(F.pad(h, (0, 0, 0, 0, self.left, 0), mode=self.mode) if self.left else h)
        return out[:, :, self.left * s:(self.left + t) * s]


def _triple(v) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)


class ResidualStack(nn.Module):
    """``layers`` residual units (ReLU, conv 3 to ``res_hidden``, ReLU, conv 1 back), then ReLU. Keeps shape."""

    def __init__(self, hidden: int, res_hidden: int, layers: int, causal=False, time_padding="zeros"):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), TimeConv3d(hidden, res_hidden, 3, causal=causal, time_padding=time_padding),
                          nn.ReLU(), nn.Conv3d(res_hidden, hidden, 1))
            for _ in range(layers))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = h + block(h)
        return F.relu(h)


class DownStage(nn.Module):
    """Strided conv (``kernel``/``stride``), ReLU, conv 3, residual stack: ``[B, c_in, T, H, W] -> [B, hidden, T/st, H/sh, W/sw]``."""

    def __init__(self, c_in, hidden, res_hidden, layers, kernel, stride, causal=False, time_padding="zeros"):
        super().__init__()
        t = dict(causal=causal, time_padding=time_padding)
        self.down = TimeConv3d(c_in, hidden, kernel, stride, **t)
        self.conv = TimeConv3d(hidden, hidden, 3, **t)
        self.res = ResidualStack(hidden, res_hidden, layers, **t)

    def forward(self, x):
        return self.res(self.conv(F.relu(self.down(x))))


class UpStage(nn.Module):
    """Conv 3, residual stack, transposed conv (``kernel``/``stride``): multiplies each size by its stride."""

    def __init__(self, c_in, hidden, res_hidden, layers, c_out, kernel, stride, causal=False, time_padding="zeros"):
        super().__init__()
        t = dict(causal=causal, time_padding=time_padding)
        self.conv = TimeConv3d(c_in, hidden, 3, **t)
        self.res = ResidualStack(hidden, res_hidden, layers, **t)
        self.up = TimeConvTranspose3d(hidden, c_out, kernel, stride, **t)

    def forward(self, h):
        return self.up(self.res(self.conv(h)))


class VQVAE(nn.Module):
    """Two-level video VQ-VAE. Arguments are the keys of ``vqvae.model`` in the config (see the schema)."""

    def __init__(self, in_channels: int = 3, hidden: int = 128, res_hidden: int = 32, res_layers: int = 2,
                 codebook_size: int = 512, codebook_dim: int = 64,
                 bottom_kernel: Sequence[int] = (4, 8, 8), bottom_stride: Sequence[int] = (2, 4, 4),
                 top_kernel: Sequence[int] = (4, 4, 4), top_stride: Sequence[int] = (2, 2, 2),
                 upsample_kernel: Sequence[int] = (4, 8, 8), upsample_stride: Sequence[int] = (2, 4, 4),
                 beta: float = 0.25, decay: float = 0.99, epsilon: float = 1e-5, restart_threshold: float = 1.0,
                 codebook_init: str = "random", bottom_mask_rate: float = 0.1, bottom_sees_top: bool = True,
                 causal_encoder: bool = False, time_padding: str = "zeros"):
        super().__init__()
        if time_padding not in ("zeros", "replicate"):
            raise ValueError(f"time_padding must be 'zeros' or 'replicate', not {time_padding!r}")
        if list(upsample_stride) != list(bottom_stride):
            raise ValueError("upsample_stride must undo bottom_stride so the output has the input's size")
        self.bottom_stride, self.top_stride = tuple(bottom_stride), tuple(top_stride)
        self.bottom_mask_rate = bottom_mask_rate
        d = codebook_dim
        # the encoder and the top decoder (its output feeds the bottom quantizer) are causal in time when asked;
        # the final decoder always sees the whole clip
        enc = dict(causal=causal_encoder, time_padding=time_padding)
        self.enc_bottom = DownStage(in_channels, hidden, res_hidden, res_layers, bottom_kernel, bottom_stride, **enc)
        self.enc_top = DownStage(hidden, hidden, res_hidden, res_layers, top_kernel, top_stride, **enc)
        self.bottom_sees_top = bottom_sees_top
        self.pre_bottom = nn.Conv3d(hidden + d if bottom_sees_top else hidden, d, 1)
        self.pre_top = nn.Conv3d(hidden, d, 1)
        q = dict(beta=beta, decay=decay, epsilon=epsilon, restart_threshold=restart_threshold, init=codebook_init)
        self.quant_bottom = EMAQuantizer(codebook_size, d, **q)
        self.quant_top = EMAQuantizer(codebook_size, d, **q)
        self.dec_top = UpStage(d, hidden, res_hidden, res_layers, d, top_kernel, top_stride, **enc)
        self.dec = UpStage(2 * d, hidden, res_hidden, res_layers, in_channels, upsample_kernel, upsample_stride)

    # ------------------------------------------------------------------------------------------ shapes
    def latent_shapes(self, frames: int, height: int, width: int) -> dict[str, list[int]]:
        """``{"top": [t, h, w], "bottom": [t, h, w]}`` for an input of ``frames x height x width``."""
        bottom = [s // k for s, k in zip((frames, height, width), self.bottom_stride)]
        top = [s // k for s, k in zip(bottom, self.top_stride)]
        return {"top": top, "bottom": bottom}

    # ------------------------------------------------------------------------------------------ parts
    def _encode_bottom(self, h_b: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        """First-stage features ``h_b [B, hidden, T', H', W']`` (and the decoded top ``up [B, D, T', H', W']``)
        -> pre-quantization bottom latents ``[B, D, T', H', W']``."""
        return self.pre_bottom(torch.cat([h_b, up.to(h_b.dtype)], 1) if self.bottom_sees_top else h_b)

    def _decode(self, up: torch.Tensor, q_bottom: torch.Tensor) -> torch.Tensor:
        """Decoded top ``up [B, D, T', H', W']`` and bottom code vectors ``[B, D, T', H', W']`` -> video ``[B, C, T, H, W]``."""
        return self.dec(torch.cat([up, q_bottom.to(up.dtype)], 1))

    # ------------------------------------------------------------------------------------------ API
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        """Reconstruct ``x [B, C, T, H, W]`` (float in [-1, 1]); returns ``(recon [B, C, T, H, W], out)``.

        ``out``: ``loss`` (reconstruction MSE + both commitment losses, a tensor), ``recon_loss``,
        ``commit_top``, ``commit_bottom`` (tensors) and the floats ``usage_top``, ``perplexity_top``,
        ``usage_bottom``, ``perplexity_bottom`` (this batch, all replicas), ``masked`` (share of clips masked).
        In training mode the codebooks are updated (EMA) and the bottom latents of a random
        ``bottom_mask_rate`` share of the clips are zeroed in the decoder input.
        """
        h_b = self.enc_bottom(x)
        q_t, _, commit_t, m_t = self.quant_top(self.pre_top(self.enc_top(h_b)))
        up = self.dec_top(q_t)
        q_b, _, commit_b, m_b = self.quant_bottom(self._encode_bottom(h_b, up))
        masked = 0.0
        if self.training and self.bottom_mask_rate > 0:
            keep = (torch.rand(x.shape[0], device=x.device) >= self.bottom_mask_rate).to(q_b.dtype)
            q_b = q_b * keep.view(-1, 1, 1, 1, 1)
            masked = float(1 - keep.mean())
        recon = self._decode(up, q_b)
        recon_loss = F.mse_loss(recon.float(), x.float())
        out = {"loss": recon_loss + commit_t + commit_b, "recon_loss": recon_loss,
               "commit_top": commit_t, "commit_bottom": commit_b, "masked": masked}
        out.update({f"{k}_top": v for k, v in m_t.items()})
        out.update({f"{k}_bottom": v for k, v in m_b.items()})
        return recon, out

    @torch.no_grad()
    def encode_codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, T, H, W]`` -> codes ``(top [B, T/4, H/8, W/8], bottom [B, T/2, H/4, W/4])`` long.

        Paper sizes: ``[B, 3, 16, 256, 256]`` -> ``top [B, 4, 32, 32]``, ``bottom [B, 8, 64, 64]``.
        """
        h_b = self.enc_bottom(x)
        top = self._codes(self.quant_top, self.pre_top(self.enc_top(h_b)))
        up = self.dec_top(self.quant_top.embed(top)) if self.bottom_sees_top else h_b
        return top, self._codes(self.quant_bottom, self._encode_bottom(h_b, up))

    @staticmethod
    def _codes(quant: EMAQuantizer, z: torch.Tensor) -> torch.Tensor:
        flat = torch.movedim(z.float(), 1, -1)
        return quant.nearest(flat.reshape(-1, flat.shape[-1])).view(flat.shape[:-1])

    @torch.no_grad()
    def decode_codes(self, top: torch.Tensor, bottom: torch.Tensor | None) -> torch.Tensor:
        """Codes ``top [B, t, h, w]``, ``bottom [B, T', H', W']`` (any integer dtype) -> video ``[B, C, T, H, W]``.

        ``bottom=None`` decodes with the bottom level masked (zeros), as in training's masking.
        """
        up = self.dec_top(self.quant_top.embed(top.long()))
        q_b = torch.zeros_like(up) if bottom is None else self.quant_bottom.embed(bottom.long())
        return self._decode(up, q_b)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, mask_bottom: bool = False) -> torch.Tensor:
        """Encode and decode ``x [B, C, T, H, W]`` without touching the codebooks; ``mask_bottom`` zeroes the
        bottom level in the decoder input, leaving what the top level carries."""
        top, bottom = self.encode_codes(x)
        return self.decode_codes(top, None if mask_bottom else bottom)


def video_to_input(clips: torch.Tensor) -> torch.Tensor:
    """uint8 clips ``[B, T, H, W, 3]`` -> model input float ``[B, 3, T, H, W]`` in [-1, 1]."""
    return clips.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def output_to_video(x: torch.Tensor) -> torch.Tensor:
    """Model output ``[B, 3, T, H, W]`` in [-1, 1] -> uint8 ``[B, T, H, W, 3]`` (rounded, clamped)."""
    return x.float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1)
