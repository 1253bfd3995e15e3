"""Reference ancestral samplers of both priors: one full forward pass per generated token.

Slow on purpose: the incremental sampler (:mod:`vqvideo.sampling.incremental`) must return exactly the same
tokens from the same generator. To make that possible the random numbers do not depend on the logits:

Draw rule (Gumbel-max). For a position with logits ``l`` [B, K] (computed in float32) and noise ``u`` [B, K]
uniform in [0, 1): ``token = argmax(l / temperature - log(-log(max(u, tiny))))`` (``tiny`` = float32's
smallest normal number), ties going to the lowest index (``torch.argmax``). This samples
``softmax(l / temperature)`` exactly.

RNG use (the whole contract with the fast sampler; all draws are ``torch.rand(shape, generator=generator,
device=generator.device, dtype=torch.float32)``, moved to the prior's device afterwards; with
``generator=None`` the default generator of the prior's device is used the same way):

- :func:`sample_top`: ONE draw of shape ``[B, T, h, w, K]`` before the first token; position ``(t, y, x)``
  uses ``u[:, t, y, x]``. Positions are generated in the order t, then y, then x.
- :func:`sample_bottom`: for each predicted timestep ``n = first, ..., Tb - 1`` in turn, ONE draw of shape
  ``[B, H, W, K]`` when timestep ``n`` starts; position ``(y, x)`` uses ``u_n[:, y, x]``. Within a timestep
  positions are generated in raster order (y, then x). Nothing else draws from the generator.

The priors must be in eval mode (dropout off). Both functions run under ``torch.no_grad()``.
"""

from __future__ import annotations

import itertools

import torch


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform noise in [0, 1) as the draw rule above consumes it: [*shape] float32 on ``device``."""
    gen_device = generator.device if generator is not None else torch.device(device)
    u = torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float32)
    return u.to(device)


def draw(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """Gumbel-max draw: logits [B, K], u [B, K] uniform -> tokens [B] long (see the module docstring)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    tiny = torch.finfo(torch.float32).tiny
    g = -torch.log(-torch.log(u.float().clamp_min(tiny)))
    return torch.argmax(logits.float() / temperature + g, dim=-1)


def _check_eval(prior) -> None:
    if prior.training:
        raise ValueError("call prior.eval() before sampling (dropout must be off)")


@torch.no_grad()
def sample_top(prior, cond: tuple[torch.Tensor, torch.Tensor], temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample the top prior.

    ``cond`` = (cond_top [B, 1, h, w], cond_bottom [B, 2, 2h, 2w]) codes -> top [B, 1 + T, h, w] long:
    ``cond_top`` followed by the T sampled timesteps (the decoder's layout). Conditioning features are
    computed once (``prior.condition``); every token then costs one ``prior.logits`` over the whole grid.
    """
    _check_eval(prior)
    cond_top, cond_bottom = (c.long() for c in cond)
    b, device = cond_top.shape[0], cond_top.device
    t_, h, w = prior.shape
    c = prior.condition(cond_top, cond_bottom)
    u = gumbel_noise((b, t_, h, w, prior.codebook_size), generator, device)
    x = torch.zeros((b, t_, h, w), dtype=torch.long, device=device)
    for t, y, xx in itertools.product(range(t_), range(h), range(w)):
        logits = prior.logits(x, c, cond_top)[:, :, t, y, xx]
        x[:, t, y, xx] = draw(logits, u[:, t, y, xx], temperature)
    return torch.cat([cond_top, x], 1)


@torch.no_grad()
def sample_bottom(prior, top: torch.Tensor, cond_bottom: torch.Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample the bottom prior, timestep by timestep.

    top [B, Tt, h, w] (cond_top + sampled timesteps), cond_bottom [B, first, H, W] -> bottom [B, Tb, H, W] long:
    ``cond_bottom`` followed by the sampled timesteps ``first..Tb-1``. The top is upsampled once
    (``prior.upsample_top``); for timestep n the conditioning features are computed once from its slice and
    the window of bottom timesteps n-window..n-1 (``prior.past``), then every token costs one
    ``prior.logits`` over the whole [H, W] grid.
    """
    _check_eval(prior)
    top, cond_bottom = top.long(), cond_bottom.long()
    b, device = top.shape[0], top.device
    h, w = prior.shape
    if cond_bottom.shape[1] != prior.first:
        raise ValueError(f"cond_bottom has {cond_bottom.shape[1]} timesteps, the prior expects {prior.first}")
    bottom = torch.zeros((b, prior.timesteps, h, w), dtype=torch.long, device=device)
    bottom[:, :prior.first] = cond_bottom
    up = prior.upsample_top(top)                                   # [B, C, Tb, H, W]
    for n in range(prior.first, prior.timesteps):
        steps = torch.full((b, 1), n, dtype=torch.long, device=device)
        c = prior.condition(up[:, :, n], prior.past(bottom, steps)[:, 0])
        u = gumbel_noise((b, h, w, prior.codebook_size), generator, device)
        x = bottom[:, n]                                           # a view: filled in place
        for y, xx in itertools.product(range(h), range(w)):
            logits = prior.logits(x, c, bottom[:, n - 1])[:, :, y, xx]
            x[:, y, xx] = draw(logits, u[:, y, xx], temperature)
    return bottom
