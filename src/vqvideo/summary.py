"""``vqvideo summary``: what the configured models are, measured from the real modules.

Each model contributes one function ``cfg -> dict`` to :data:`SECTIONS` (name -> function); the summary is
``{name: section(cfg)}``. Shapes come from a forward pass on the ``meta`` device (no memory, no compute), so
the paper's sizes are summarised on any machine. Priors add their own section here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def vqvae_section(cfg) -> dict:
    """Parameters, latent shapes (full clip and conditioning frames), codebooks, bits vs raw 8-bit video."""
    from vqvideo.metrics.quality import bits_ratio, latent_bits, raw_bits
    from vqvideo.models.vqvae import VQVAE

    mc = dataclasses.asdict(cfg.vqvae.model)
    frames, res = cfg.data.frames, cfg.data.resolution
    with torch.device("meta"):
        model = VQVAE(**mc)
        x = torch.empty(1, mc["in_channels"], frames, res, res)
        top, bottom = model.encode_codes(x)
        cond_top, cond_bottom = model.encode_codes(x[:, :, :cfg.sampling.cond_frames])
        recon = model.decode_codes(top, bottom)
    shapes = {"top": list(top.shape[1:]), "bottom": list(bottom.shape[1:])}
    k = mc["codebook_size"]
    return {
        "parameters": parameter_count(model),
        "parameters_by_part": {name: parameter_count(m) for name, m in model.named_children()},
        "input_shape": [mc["in_channels"], frames, res, res],
        "output_shape": list(recon.shape[1:]),
        "latent_shapes": shapes,
        "cond_latent_shapes": {"top": list(cond_top.shape[1:]), "bottom": list(cond_bottom.shape[1:])},
        "codebooks": {"top": [k, mc["codebook_dim"]], "bottom": [k, mc["codebook_dim"]]},
        "latent_bits_per_clip": latent_bits(shapes, k),
        "raw_bits_per_clip": raw_bits(frames, res, res),
        "bits_ratio": bits_ratio(shapes, k, frames, res, res),
    }


def _prior_section(cfg, level: str) -> dict:
    """Parameters, receptive field and the shapes a prior models (latent shapes from the VQ-VAE on ``meta``)."""
    from vqvideo.train.priors import build_prior, prior_model_config

    shapes = vqvae_section(cfg)
    fake = {name: torch.empty(shape) for name, shape in
            (("top", shapes["latent_shapes"]["top"]), ("bottom", shapes["latent_shapes"]["bottom"]),
             ("cond_top", shapes["cond_latent_shapes"]["top"]), ("cond_bottom", shapes["cond_latent_shapes"]["bottom"]))}
    conf = prior_model_config(cfg, level, fake)
    with torch.device("meta"):
        prior = build_prior(level, conf)
        batch = {k: torch.zeros(1, *v.shape, dtype=torch.long) for k, v in fake.items()}
        if level == "top":
            logits = prior(*prior.split(batch))
        else:
            bottom, top = prior.split(batch)
            logits = prior(bottom, top, torch.full((1, 1), prior.first, dtype=torch.long))[:, 0]
    described = prior.describe()
    return {
        "parameters": parameter_count(prior),
        "parameters_by_part": {name: parameter_count(m) for name, m in prior.named_children()},
        "models": described["models"],
        "order": described["order"],
        "logits_shape": list(logits.shape[1:]),
        "receptive_field": described["receptive_field"],
        "attention_after_layers": [i + 1 for i in prior.pixelcnn.attention_after],
    }


SECTIONS: dict[str, Callable] = {"vqvae": vqvae_section,
                                 "top_prior": lambda cfg: _prior_section(cfg, "top"),
                                 "bottom_prior": lambda cfg: _prior_section(cfg, "bottom")}


def summarize(cfg) -> dict:
    """``{model name: its section}`` for every registered section."""
    return {name: section(cfg) for name, section in SECTIONS.items()}


def format_summary(summary: dict) -> str:
    """Plain-text table: one block per model, one line per key."""
    lines = []
    for name, section in summary.items():
        lines.append(f"[{name}]")
        for key, value in section.items():
            if isinstance(value, float):
                value = f"{value:.4%}" if key.endswith("ratio") else f"{value:.4g}"
            elif isinstance(value, int):
                value = f"{value:,}"
            lines.append(f"  {key:<24} {value}")
    return "\n".join(lines)
