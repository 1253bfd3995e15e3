"""Bottom prior (paper §3.2, Tables 4, 7, 8): a 2D PixelCNN per bottom timestep, conditioned on all top
latents and on a window of past bottom timesteps.

Modelled: bottom timesteps n = ``first``..Tb-1 (paper: n = 2..7 of 8; 0 and 1 cover the 4 conditioning
frames), each [64, 64]. Conditioning, as sampling will have it:
- top latents ``top`` [B, 4, 32, 32] = ``cat(cond_top, top[:, 1:])`` (sampling has the conditioning frames'
  top code and the top prior's 3 sampled timesteps; never the full clip's top timestep 0);
- bottom codes of timesteps n-window..n-1, taken from ``bottom`` [B, 8, 64, 64] =
  ``cat(cond_bottom, bottom[:, 2:])`` (timesteps 0, 1 from the conditioning frames encoded alone), with a
  learned "before the clip" code where n - k < 0 (n = 2 with window 4: two such codes, then cond_bottom).

Generation order: timestep n = first..Tb-1; within it row y, then column x. Sampling: once per sample
``up = prior.upsample_top(top)``; per timestep ``cond = prior.condition(up[:, :, n], past)`` with
``past = past_window(bottom, [[n]], ...)``, then ``prior.logits(x_n, cond, bottom[:, n - 1])`` position by position.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from vqvideo.models.conditioning import BottomConditioning, past_window
from vqvideo.models.pixelcnn import PixelCNN


class BottomPrior(nn.Module):
    """Conditional 2D PixelCNN with causal self-attention, one bottom timestep at a time.

    Args: ``codebook_size`` K; ``shape`` (H, W) of one bottom timestep (paper (64, 64)); ``timesteps`` Tb
    of the bottom level (8) and ``first`` predicted timestep (2); the PixelCNN's ``hidden``, ``residual``,
    ``layers``, ``attention_layers``, ``heads``, ``filter_size``, ``dropout`` (Table 4); the conditioning
    stack's ``embed_dim``, ``cond_channels`` (our intermediate width), ``cond_hidden`` (1024),
    ``cond_residual``, ``cond_blocks`` (20) and the past ``window`` (Table 8: 4); ``copy_previous``: the
    PixelCNN's copy term (:class:`PixelCNN`), copying from bottom timestep n - 1.
    """

    level = "bottom"

    def __init__(self, codebook_size: int, shape: tuple[int, int] = (64, 64), timesteps: int = 8, first: int = 2,
                 hidden: int = 512, residual: int = 1024, layers: int = 20, attention_layers: int = 4,
                 heads: int = 8, filter_size: int = 5, dropout: float = 0.0, embed_dim: int = 64,
                 cond_channels: int = 256, cond_hidden: int = 1024, cond_residual: int = 256,
                 cond_blocks: int = 20, window: int = 4,
                 copy_previous: bool = False):
        super().__init__()
        self.codebook_size, self.shape = codebook_size, tuple(shape)
        self.timesteps, self.first, self.window = timesteps, first, window
        self.conditioning = BottomConditioning(codebook_size, window, embed_dim, cond_channels, cond_hidden,
                                               cond_residual, cond_blocks)
        self.pixelcnn = PixelCNN(codebook_size, self.shape, hidden, residual, layers, attention_layers, heads,
                                 filter_size, dropout, cond_channels=cond_hidden, copy_previous=copy_previous)

    @property
    def pad_code(self) -> int:
        """The code that marks "before the clip" in past windows (= codebook_size)."""
        return self.codebook_size

    def upsample_top(self, top: torch.Tensor) -> torch.Tensor:
        """top [B, Tt, h, w] long -> [B, cond_hidden, Tb, H, W] (once per sample)."""
        return self.conditioning.upsample_top(top)

    def past(self, bottom: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """bottom [B, Tb, H, W], steps [B, S] -> past windows [B, S, window, H, W] (pad code before 0)."""
        return past_window(bottom.long(), steps, self.window, self.pad_code)

    def condition(self, top_slice: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        """top_slice [B, cond_hidden, H, W] (= upsample_top(top)[:, :, n]), past [B, window, H, W]
        -> features [B, cond_hidden, H, W] (once per generated timestep)."""
        return self.conditioning(top_slice, past)

    def logits(self, x: torch.Tensor, cond: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """x [B, H, W] long (one timestep, teacher forcing), cond [B, cond_hidden, H, W], previous [B, H, W]
        (timestep n - 1's codes: the copy term's source) -> [B, K, H, W]."""
        return self.pixelcnn(x, cond, previous)

    def forward(self, bottom: torch.Tensor, top: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits of timesteps ``steps`` [B, S] (long, each in first..Tb-1).

        bottom [B, Tb, H, W] (timesteps < first are the conditioning ones), top [B, Tt, h, w]
        -> logits [B, S, K, H, W] of ``bottom.gather(steps)``.
        """
        b, s = steps.shape
        up = self.upsample_top(top)                                             # [B, C, Tb, H, W]
        idx = steps[:, None, :, None, None].expand(-1, up.shape[1], -1, *up.shape[3:])
        top_slices = rearrange(up.gather(2, idx), "b c s h w -> (b s) c h w")
        past = rearrange(self.past(bottom, steps), "b s k h w -> (b s) k h w")
        x = rearrange(self.targets(bottom, steps), "b s h w -> (b s) h w")
        previous = rearrange(self.targets(bottom, steps - 1), "b s h w -> (b s) h w")
        logits = self.logits(x, self.condition(top_slices, past), previous)
        return rearrange(logits, "(b s) k h w -> b s k h w", b=b, s=s)

    @staticmethod
    def targets(bottom: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """bottom [B, Tb, H, W], steps [B, S] -> the modelled codes [B, S, H, W] (long)."""
        idx = steps[:, :, None, None].expand(-1, -1, *bottom.shape[2:])
        return bottom.long().gather(1, idx)

    @staticmethod
    def split(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """A latent batch -> (bottom = cat(cond_bottom, bottom[:, Tc:]), top = cat(cond_top, top[:, 1:])),
        i.e. the conditioning timesteps replaced by the conditioning frames encoded alone (what sampling has)."""
        cb, ct = batch["cond_bottom"].long(), batch["cond_top"].long()
        bottom = torch.cat([cb, batch["bottom"][:, cb.shape[1]:].long()], 1)
        top = torch.cat([ct, batch["top"][:, ct.shape[1]:].long()], 1)
        return bottom, top

    def describe(self) -> dict:
        return {"models": f"bottom latents [{self.shape[0]}, {self.shape[1]}] at timesteps "
                          f"{self.first}..{self.timesteps - 1}, one at a time, given all top latents and "
                          f"bottom timesteps n-{self.window}..n-1",
                "order": "n, then y, then x", "receptive_field": self.pixelcnn.receptive_field()}
