"""The priors' copy term (``copy_previous``): exact causality, what it adds, and both samplers agreeing."""

import pytest
import torch

from vqvideo.models.bottom_prior import BottomPrior
from vqvideo.models.pixelcnn import PixelCNN
from vqvideo.models.top_prior import TopPrior
from vqvideo.sampling import incremental, naive

from causality import EmbeddingProbe, assert_exactly_causal, dependence, randomize

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape, past_stream", [((3, 4, 4), True), ((2, 3, 5), False), ((4, 5), False)])
def test_copy_term_keeps_the_pixelcnn_exactly_causal(shape, past_stream):
    model = randomize(PixelCNN(6, shape, hidden=8, residual=6, layers=4, attention_layers=1, heads=2,
                               filter_size=3, dropout=0.0, cond_channels=3, past_stream=past_stream,
                               copy_previous=True))
    probe = EmbeddingProbe(model.embed)
    x, c = torch.randint(0, 6, (1, *shape)), torch.randn(1, 3, *shape)
    before = torch.randint(0, 6, (1, *shape[-2:]))
    dep = dependence(lambda n: model(x.expand(n, *shape), c.expand(n, *c.shape[1:]), before.expand(n, -1, -1)),
                     probe, shape)
    assert_exactly_causal(dep)


def test_copy_term_adds_the_gate_to_the_code_one_timestep_earlier_only():
    torch.manual_seed(0)
    shape = (3, 2, 3)
    net = PixelCNN(5, shape, hidden=8, residual=6, layers=2, attention_layers=0, heads=2, filter_size=3,
                   dropout=0.0, cond_channels=4, past_stream=True, copy_previous=True).eval()
    plain = PixelCNN(5, shape, hidden=8, residual=6, layers=2, attention_layers=0, heads=2, filter_size=3,
                     dropout=0.0, cond_channels=4, past_stream=True).eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("copy_gate")})
    x, c, before = torch.randint(0, 5, (2, *shape)), torch.randn(2, 4, *shape), torch.randint(0, 5, (2, 2, 3))
    with torch.no_grad():
        extra = net(x, c, before) - plain(x, c)                   # [B, K, T, H, W]
        gate = net.copy_gate(c)[:, 0]                             # [B, T, H, W]
    source = torch.cat([before[:, None], x[:, :-1]], 1)
    onehot = torch.nn.functional.one_hot(source, 5).permute(0, 4, 1, 2, 3).float()
    torch.testing.assert_close(extra, onehot * gate[:, None])
    assert torch.allclose(gate, torch.full_like(gate, torch.log(torch.tensor(5.0)).item()))  # the initial gate


def _sharpen(model, scale=3.0):
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


def test_incremental_equals_naive_with_the_copy_term():
    torch.manual_seed(0)
    top = _sharpen(TopPrior(16, (2, 3, 4), hidden=16, residual=16, layers=3, attention_layers=1, heads=2,
                            filter_size=3, dropout=0.0, embed_dim=8, cond_channels=8, cond_hidden=16,
                            cond_residual=8, cond_layers=1, past_stream=True, copy_previous=True).eval())
    bottom = _sharpen(BottomPrior(16, (6, 8), timesteps=4, first=2, hidden=16, residual=16, layers=3,
                                  attention_layers=1, heads=2, filter_size=5, embed_dim=8, cond_channels=8,
                                  cond_hidden=16, cond_residual=8, cond_blocks=1, window=4,
                                  copy_previous=True).eval())
    ct, cb = torch.randint(0, 16, (3, 1, 3, 4)), torch.randint(0, 16, (3, 2, 6, 8))
    a = naive.sample_top(top, (ct, cb), 1.0, torch.Generator().manual_seed(3))
    b = incremental.sample_top(top, (ct, cb), 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    a2 = naive.sample_bottom(bottom, a, cb, 0.7, torch.Generator().manual_seed(5))
    b2 = incremental.sample_bottom(bottom, a, cb, 0.7, torch.Generator().manual_seed(5))
    assert torch.equal(a2, b2)
    # a strong gate makes the samples repeat the previous timestep (the term is really applied when sampling)
    with torch.no_grad():
        top.pixelcnn.copy_gate.bias.fill_(1e3)
        bottom.pixelcnn.copy_gate.bias.fill_(1e3)
    held = incremental.sample_top(top, (ct, cb), 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(held, ct.expand(-1, 3, -1, -1))
    held_bottom = incremental.sample_bottom(bottom, held, cb, 1.0, torch.Generator().manual_seed(5))
    assert torch.equal(held_bottom[:, 2:], cb[:, 1:].expand(-1, 2, -1, -1))
