"""Conditioning stacks of the two priors (paper Tables 5-8). They see only conditioning inputs, so they may
look anywhere (no masks); each is computed once per sample (top) or once per generated timestep (bottom).

Shapes below use the paper's sizes (top latents 32x32, bottom 64x64, 512 codes); every size follows the
inputs, so the demo's 8x8 / 16x16 latents go through the same code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class ResBlock(nn.Module):
    """VQ-VAE-2 residual block, 2D or 3D: ``x + conv1x1(relu(conv3(relu(x))))`` (``channels -> residual -> channels``)."""

    def __init__(self, dims: int, channels: int, residual: int):
        super().__init__()
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[dims]
        self.conv3 = conv(channels, residual, 3, padding=1)
        self.conv1 = conv(residual, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv3(F.relu(x))))


def _embed(table: nn.Embedding, codes: torch.Tensor) -> torch.Tensor:
    """[B, *S] long -> [B, E, *S]."""
    return rearrange(table(codes.long()), "b ... e -> b e ...")


class TopConditioning(nn.Module):
    """Tables 5-6: the conditioning frames' latents -> features for every layer of the top prior.

    ``cond_top`` [B, 1, h, w] and ``cond_bottom`` [B, 2, 2h, 2w] (paper: 32x32 and 64x64x2) ->
    [B, hidden, T, h, w] (paper: 32x32x3x512), computed once per sample:

    1. embed both (``embed_dim``); ``cond_top`` upsampled by a transposed conv (2,4,4)/(2,2,2) to [2, 2h, 2w]
       ("32x32 upsampled to 64x64x2"), concatenated with ``cond_bottom`` -> [B, 2E, 2, 2h, 2w];
    2. conv (2,4,4)/(2,2,2) down to [B, channels, 1, h, w] (paper: 32x32x256);
    3. tiled to T timesteps (paper: 3) plus a learned per-timestep embedding (ours: the tiles are otherwise
       identical, and the prior should know which future step it predicts), conv 3x3x3 to ``hidden`` (512);
    4. ``layers`` (4) residual blocks with ``residual`` (128) units, then ReLU.
    """

    def __init__(self, codebook_size: int, timesteps: int, embed_dim: int, channels: int, hidden: int,
                 residual: int, layers: int):
        super().__init__()
        self.timesteps = timesteps
        self.embed_top = nn.Embedding(codebook_size, embed_dim)
        self.embed_bottom = nn.Embedding(codebook_size, embed_dim)
        self.up = nn.ConvTranspose3d(embed_dim, embed_dim, (2, 4, 4), stride=(2, 2, 2), padding=(0, 1, 1))
        self.down = nn.Conv3d(2 * embed_dim, channels, (2, 4, 4), stride=(2, 2, 2), padding=(0, 1, 1))
        self.time = nn.Parameter(torch.zeros(channels, timesteps, 1, 1))
        self.inp = nn.Conv3d(channels, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*(ResBlock(3, hidden, residual) for _ in range(layers)))

    def forward(self, cond_top: torch.Tensor, cond_bottom: torch.Tensor) -> torch.Tensor:
        top = F.relu(self.up(_embed(self.embed_top, cond_top)))            # [B, E, 2, 2h, 2w]
        z = torch.cat([top, _embed(self.embed_bottom, cond_bottom)], 1)    # [B, 2E, 2, 2h, 2w]
        z = F.relu(self.down(z))                                           # [B, channels, 1, h, w]
        z = z.expand(-1, -1, self.timesteps, -1, -1) + self.time           # [B, channels, T, h, w]
        return F.relu(self.blocks(self.inp(z)))                            # [B, hidden, T, h, w]


class BottomConditioning(nn.Module):
    """Tables 7-8: features conditioning the bottom prior's 2D PixelCNN at bottom timestep ``n``.

    Two parts, so that the expensive one runs once per sample:

    - :meth:`upsample_top`: top latents [B, Tt, h, w] (paper 4x32x32) -> embedded -> transposed conv
      (4,3,3)/(2,1,1) -> transposed conv (3,4,4)/(1,2,2) -> conv (3,3,3)/(1,1,1) -> [B, C_top, 2Tt, 2h, 2w]
      (paper: 64x64x8x1024; ``C_top = hidden``). Slice ``n`` of it conditions timestep ``n``.
    - :meth:`forward`: (that slice [B, C_top, H, W], the past window [B, window, H, W] of bottom codes
      n-window..n-1, where index ``codebook_size`` marks "before the clip") -> [B, hidden, H, W]. The window
      is embedded and goes through 4 convs (4,3,3) with stride (2,1,1) and temporal padding (2 before, 1 after)
      with zeros: window 4 -> 2 -> 1 -> 1 -> 1 timesteps (any window up to 16 ends at 1); concatenated with the
      slice, a 3x3 conv to ``hidden`` and ``blocks`` VQ-VAE-2 residual blocks (``residual`` units), then ReLU.

    The intermediate widths (``channels``) are ours: the paper gives only the 1024-wide output.
    """

    def __init__(self, codebook_size: int, window: int, embed_dim: int, channels: int, hidden: int,
                 residual: int, blocks: int):
        super().__init__()
        if not 1 <= window <= 16:
            raise ValueError("window must be in 1..16 (four stride-2 convolutions reduce it to one timestep)")
        self.window, self.pad_code = window, codebook_size
        self.embed_top = nn.Embedding(codebook_size, embed_dim)
        self.up = nn.Sequential(
            nn.ConvTranspose3d(embed_dim, channels, (4, 3, 3), stride=(2, 1, 1), padding=(1, 1, 1)), nn.ReLU(),
            nn.ConvTranspose3d(channels, channels, (3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)), nn.ReLU(),
            nn.Conv3d(channels, hidden, (3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1)), nn.ReLU())
        self.embed_past = nn.Embedding(codebook_size + 1, embed_dim)  # + the "before the clip" code
        self.past = nn.ModuleList(nn.Conv3d(embed_dim if i == 0 else channels, channels, (4, 3, 3),
                                            stride=(2, 1, 1), padding=(0, 1, 1)) for i in range(4))
        self.inp = nn.Conv2d(hidden + channels, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*(ResBlock(2, hidden, residual) for _ in range(blocks)))

    def upsample_top(self, top: torch.Tensor) -> torch.Tensor:
        """[B, Tt, h, w] long -> [B, hidden, 2Tt, 2h, 2w]."""
        return self.up(_embed(self.embed_top, top))

    def past_features(self, past: torch.Tensor) -> torch.Tensor:
        """[B, window, H, W] long (``pad_code`` where n - k < 0) -> [B, channels, H, W]."""
        z = _embed(self.embed_past, past)
        for i, conv in enumerate(self.past):
            z = conv(F.pad(z, (0, 0, 0, 0, 2, 1)))  # time padding (2 before, 1 after): T -> ceil(T / 2)
            z = F.relu(z)
        assert z.shape[2] == 1, z.shape
        return z[:, :, 0]

    def forward(self, top_slice: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        """top_slice [B, hidden, H, W], past [B, window, H, W] -> [B, hidden, H, W]."""
        z = torch.cat([top_slice, self.past_features(past)], 1)
        return F.relu(self.blocks(self.inp(z)))


def past_window(bottom: torch.Tensor, steps: torch.Tensor, window: int, pad_code: int) -> torch.Tensor:
    """The past bottom codes each step is conditioned on.

    bottom [B, Tb, H, W] (timesteps 0..Tb-1), steps [B, S] long -> [B, S, window, H, W]: for step ``n`` the
    codes of timesteps n-window, ..., n-1, with ``pad_code`` for the timesteps before 0.
    """
    b, _, hh, ww = bottom.shape
    padded = torch.cat([bottom.new_full((b, window, hh, ww), pad_code), bottom], 1)
    idx = steps[:, :, None] + torch.arange(window, device=steps.device)  # padded index of n-window+k
    s = steps.shape[1]
    idx = idx.reshape(b, s * window, 1, 1).expand(-1, -1, hh, ww)
    return padded.gather(1, idx).reshape(b, s, window, hh, ww)
