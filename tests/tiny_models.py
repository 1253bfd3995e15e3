"""Untrained tiny models saved where the layout puts the checkpoints, for the tests that run encode, sample and
predict end to end (tests/sampling/test_pipeline.py, tests/sampling/test_real_footage.py): the point there is
the code paths, not the models' quality, so random weights (seeded) are enough."""

from __future__ import annotations

from pathlib import Path

import torch

from vqvideo.models.bottom_prior import BottomPrior
from vqvideo.models.top_prior import TopPrior
from vqvideo.models.vqvae import VQVAE
from vqvideo.runtime.checkpoint import save_checkpoint

VQ = dict(hidden=8, res_hidden=4, res_layers=1, codebook_size=16, codebook_dim=4)


def prior_configs(resolution: int) -> tuple[dict, dict]:
    """The top and bottom prior configs for 16-frame clips of ``resolution`` pixels encoded by :data:`VQ`
    (its default strides: bottom latents ``[8, R/4, R/4]``, top ``[4, R/8, R/8]``, the first timestep of each
    conditioning)."""
    top = dict(codebook_size=16, shape=[3, resolution // 8, resolution // 8], hidden=8, residual=8, layers=2,
               attention_layers=1, heads=2, filter_size=3, dropout=0.0, embed_dim=4, cond_channels=4,
               cond_hidden=8, cond_residual=4, cond_layers=1, past_stream=True)
    bottom = dict(codebook_size=16, shape=[resolution // 4, resolution // 4], timesteps=8, first=2, hidden=8,
                  residual=8, layers=2, attention_layers=1, heads=2, filter_size=3, embed_dim=4, cond_channels=4,
                  cond_hidden=8, cond_residual=4, cond_blocks=1, window=4)
    return top, bottom


def sharpen(model: torch.nn.Module, scale: float = 3.0) -> torch.nn.Module:
    """Larger weights: peaked logits that depend strongly on the context (a stricter comparison)."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def save_tiny_checkpoints(results: Path, resolution: int, prior_scale: float = 1.0) -> None:
    """``results/vqvae/checkpoint.pt`` and ``results/priors/{top,bottom}/checkpoint.pt``: a seeded, untrained
    :data:`VQ` and the priors of :func:`prior_configs`, their weights times ``prior_scale``."""
    top, bottom = prior_configs(resolution)
    torch.manual_seed(0)
    for kind, model, config, path in [
        ("vqvae", VQVAE(**VQ), VQ, results / "vqvae" / "checkpoint.pt"),
        ("top_prior", sharpen(TopPrior(**top), prior_scale), top, results / "priors" / "top" / "checkpoint.pt"),
        ("bottom_prior", sharpen(BottomPrior(**bottom), prior_scale), bottom,
         results / "priors" / "bottom" / "checkpoint.pt"),
    ]:
        save_checkpoint(path, {"kind": kind, "model": model.state_dict(), "model_config": config, "step": 0})
