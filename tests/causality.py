"""Helpers of the causality tests (tests/models/test_pixelcnn.py, tests/train/test_priors.py): which input
tokens each output position's logits depend on, read from gradients."""

import itertools

import torch
from torch import nn


def randomize(model: nn.Module, std: float = 0.3) -> nn.Module:
    """Random weights everywhere (masked taps stay masked: CausalConv multiplies by its mask)."""
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.normal_(p, std=std)
    return model.eval()


class EmbeddingProbe:
    """Makes an nn.Embedding's output a leaf that requires grad, so gradients w.r.t. the token inputs can be read."""

    def __init__(self, embedding: nn.Embedding):
        self.out = None
        embedding.register_forward_hook(self._hook)

    def _hook(self, _mod, _inp, out):
        self.out = out.detach().requires_grad_(True)
        return self.out


def dependence(logits_fn, probe: EmbeddingProbe, shape) -> torch.Tensor:
    """dep[i, j] = True iff the logits at position i (generation order) have a nonzero gradient w.r.t. token j.

    ``logits_fn(n)`` runs the model on a batch of n copies of one input ([n, K, *shape]); copy i backpropagates
    from position i only, so one backward pass gives every row (the samples of a batch are independent).
    """
    positions = list(itertools.product(*map(range, shape)))
    n = len(positions)
    logits = logits_fn(n)
    picked = torch.stack([logits[(i, slice(None), *u)] for i, u in enumerate(positions)])
    (grad,) = torch.autograd.grad(picked.sum(), probe.out)          # [n, *shape, C]
    return (grad.abs().flatten(1, -2).sum(-1) > 0)


def assert_exactly_causal(dep: torch.Tensor) -> None:
    n = dep.shape[0]
    later = torch.triu(torch.ones(n, n, dtype=torch.bool))       # j >= i: the position itself and later ones
    leaks = (dep & later).nonzero().tolist()
    assert not leaks, f"logits depend on the token itself or later ones at (i, j) = {leaks[:5]}"
    unreached = (~dep & ~later).nonzero().tolist()
    assert not unreached, f"earlier tokens not reached (blind spot) at (i, j) = {unreached[:5]}"
