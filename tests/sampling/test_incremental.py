"""The incremental (cached) sampler: the same tokens as the naive one, and the same logits as a teacher-forced
forward pass, for the top and bottom priors and the PixelCNN under them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqvideo.models.bottom_prior import BottomPrior
from vqvideo.models.pixelcnn import PixelCNN
from vqvideo.models.top_prior import TopPrior
from vqvideo.sampling import incremental, naive

from tiny_models import sharpen

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_top(seed=0, past_stream=False, shape=(2, 3, 4), attention_layers=2):
    torch.manual_seed(seed)
    return TopPrior(16, shape, hidden=16, residual=16, layers=3, attention_layers=attention_layers, heads=2,
                    filter_size=3, dropout=0.5, embed_dim=8, cond_channels=8, cond_hidden=16, cond_residual=8,
                    cond_layers=1, past_stream=past_stream).eval()


def _tiny_bottom(seed=0, filter_size=5):
    torch.manual_seed(seed)
    return BottomPrior(16, (6, 8), timesteps=4, first=2, hidden=16, residual=16, layers=3, attention_layers=2,
                       heads=2, filter_size=filter_size, embed_dim=8, cond_channels=8, cond_hidden=16,
                       cond_residual=8, cond_blocks=1, window=4).eval()


@pytest.mark.parametrize("past_stream, shape, attention_layers", [(False, (2, 3, 4), 2), (True, (2, 3, 4), 2),
                                                                  (True, (3, 3, 4), 0)])
def test_incremental_equals_naive_top_prior(past_stream, shape, attention_layers):
    prior = sharpen(_tiny_top(past_stream=past_stream, shape=shape, attention_layers=attention_layers))
    ct, cb = torch.randint(0, 16, (3, 1, 3, 4)), torch.randint(0, 16, (3, 2, 6, 8))
    a = naive.sample_top(prior, (ct, cb), 1.0, torch.Generator().manual_seed(3))
    b = incremental.sample_top(prior, (ct, cb), 1.0, torch.Generator().manual_seed(3))
    assert a.shape == b.shape == (3, 1 + shape[0], 3, 4) and a.dtype == b.dtype == torch.long
    assert torch.equal(a, b)
    assert torch.equal(b[:, :1], ct)
    c = incremental.sample_top(prior, (ct, cb), 1.0, torch.Generator().manual_seed(4))
    assert not torch.equal(b, c)  # the seed matters: the comparison above is not between constants


def test_incremental_equals_naive_bottom_prior():
    prior = sharpen(_tiny_bottom())
    top, cb = torch.randint(0, 16, (2, 2, 3, 4)), torch.randint(0, 16, (2, 2, 6, 8))
    a = naive.sample_bottom(prior, top, cb, 0.7, torch.Generator().manual_seed(5))
    b = incremental.sample_bottom(prior, top, cb, 0.7, torch.Generator().manual_seed(5))
    assert a.shape == b.shape == (2, 4, 6, 8)
    assert torch.equal(a, b)
    assert torch.equal(b[:, :2], cb)


@pytest.mark.parametrize("shape, k, attention, cond_channels, past_stream",
                         [((5, 6), 3, 2, 8, False), ((5, 7), 5, 2, 8, False), ((3, 4, 5), 3, 2, 8, False),
                          ((4, 5), 3, 0, 0, False), ((3, 4, 5), 3, 2, 8, True), ((4, 3, 5), 5, 0, 0, True)])
def test_incremental_logits_equal_teacher_forcing(shape, k, attention, cond_channels, past_stream):
    """At every position, the cached step's logits equal the teacher-forced forward's over the sampled grid."""
    torch.manual_seed(0)
    net = sharpen(PixelCNN(16, shape, hidden=16, residual=24, layers=4, attention_layers=attention, heads=2,
                            filter_size=k, dropout=0.0, cond_channels=cond_channels,
                            past_stream=past_stream).eval(), 2.0)
    cond = torch.randn(2, 8, *shape) if cond_channels else None
    noise = torch.rand(2, *shape, 16)
    sampler = incremental.IncrementalPixelCNN(net)
    codes, logits = sampler.sample(cond, noise, 1.0, keep_logits=True)
    with torch.no_grad():
        full = net(codes, cond)
    assert full.abs().max() > 1.0  # logits that are not all near zero
    torch.testing.assert_close(logits, full, rtol=1e-4, atol=1e-4)
    # a teacher-forced prefix (the benchmark starts there), then sampling: still the naive sampler's tokens
    start = codes[0].numel() // 2 + 1
    prefix = torch.randint(0, 16, codes.shape)
    resumed = sampler.sample(cond, noise, 1.0, prefix=prefix, start=start)
    flat_prefix, flat_resumed = prefix.flatten(1), resumed.flatten(1)
    assert torch.equal(flat_resumed[:, :start], flat_prefix[:, :start])
    x = resumed.clone().flatten(1)
    with torch.no_grad():
        for i in range(start, x.shape[1]):
            pos = np.unravel_index(i, shape)
            step_logits = net(x.view(codes.shape), cond)[(slice(None), slice(None)) + tuple(pos)]
            assert torch.equal(naive.draw(step_logits, noise[(slice(None),) + tuple(pos)], 1.0), x[:, i])
