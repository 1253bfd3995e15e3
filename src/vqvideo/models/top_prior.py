"""Top prior (paper §3.2, Tables 4-6): a 3D PixelCNN over the predicted top latents, conditioned on the
conditioning frames' latents.

Modelled: ``x`` = the 3 predicted top timesteps ``top[:, 1:]`` [B, 3, 32, 32] (timestep 0 of the top level
covers the 4 conditioning frames, which are given). Conditioning: ``cond_top`` [B, 1, 32, 32] and
``cond_bottom`` [B, 2, 64, 64], the conditioning frames encoded alone (exactly what sampling has).

Generation order: timestep t = 0..T-1, then row y, then column x within the frame (raster); logits at
(t, y, x) depend on ``x`` only at earlier positions in that order, and on the conditioning everywhere.
Sampling: ``cond = prior.condition(cond_top, cond_bottom)`` once per sample, then ``prior.logits(x, cond, cond_top)``
(see :mod:`vqvideo.sampling.naive` for the reference sampler).
"""

from __future__ import annotations

import torch
from torch import nn

from vqvideo.models.conditioning import TopConditioning
from vqvideo.models.pixelcnn import PixelCNN


class TopPrior(nn.Module):
    """Conditional 3D PixelCNN with causal self-attention.

    Args: ``codebook_size`` K; ``shape`` (T, h, w) of the modelled latents (paper (3, 32, 32)); the PixelCNN's
    ``hidden``, ``residual``, ``layers``, ``attention_layers``, ``heads``, ``filter_size``, ``dropout``
    (Table 4); the conditioning stack's ``embed_dim``, ``cond_channels`` (256), ``cond_hidden`` (512),
    ``cond_residual`` (128), ``cond_layers`` (4) (Tables 5-6); ``past_stream``: the PixelCNN's third stream over
    earlier frames, without which its convolutions do not see every position of earlier frames
    (:mod:`vqvideo.models.pixelcnn`; the paper config turns it on; False here is what checkpoints written
    before the option hold); ``copy_previous``: the PixelCNN's copy term (:class:`PixelCNN`), copying from the
    previous top timestep (``cond_top`` for the first modelled one).
    """

    level = "top"

    def __init__(self, codebook_size: int, shape: tuple[int, int, int] = (3, 32, 32), hidden: int = 512,
                 residual: int = 1024, layers: int = 40, attention_layers: int = 8, heads: int = 8,
                 filter_size: int = 3, dropout: float = 0.5, embed_dim: int = 64, cond_channels: int = 256,
                 cond_hidden: int = 512, cond_residual: int = 128, cond_layers: int = 4, past_stream: bool = True,
                 copy_previous: bool = False):
        super().__init__()
        self.codebook_size, self.shape = codebook_size, tuple(shape)
        self.conditioning = TopConditioning(codebook_size, self.shape[0], embed_dim, cond_channels, cond_hidden,
                                            cond_residual, cond_layers)
        self.pixelcnn = PixelCNN(codebook_size, self.shape, hidden, residual, layers, attention_layers, heads,
                                 filter_size, dropout, cond_channels=cond_hidden, past_stream=past_stream,
                                 copy_previous=copy_previous)

    def condition(self, cond_top: torch.Tensor, cond_bottom: torch.Tensor) -> torch.Tensor:
        """cond_top [B, 1, h, w], cond_bottom [B, 2, 2h, 2w] (long) -> features [B, cond_hidden, T, h, w]."""
        return self.conditioning(cond_top, cond_bottom)

    def logits(self, x: torch.Tensor, cond: torch.Tensor, cond_top: torch.Tensor) -> torch.Tensor:
        """x [B, T, h, w] long (teacher forcing), cond from :meth:`condition`, cond_top [B, 1, h, w] (the copy
        term's source before ``x``) -> logits [B, K, T, h, w]."""
        return self.pixelcnn(x, cond, cond_top[:, -1])

    def forward(self, x: torch.Tensor, cond_top: torch.Tensor, cond_bottom: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, K, T, h, w] of ``x`` [B, T, h, w]."""
        return self.logits(x, self.condition(cond_top, cond_bottom), cond_top)

    @staticmethod
    def split(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A latent batch -> (target x = top[:, 1:], cond_top, cond_bottom), all long."""
        return batch["top"][:, 1:].long(), batch["cond_top"].long(), batch["cond_bottom"].long()

    def describe(self) -> dict:
        return {"models": f"top latents [T={self.shape[0]}, {self.shape[1]}, {self.shape[2]}] "
                          f"(top timesteps 1..{self.shape[0]}) given cond_top and cond_bottom",
                "order": "t, then y, then x", "receptive_field": self.pixelcnn.receptive_field()}
