"""Masked convolutions, gated layers and causal attention of vqvideo.models.pixelcnn: exact causality."""


import pytest
import torch

from vqvideo.models.pixelcnn import CausalConv, PixelCNN, attention_after, first_h_offsets

from causality import EmbeddingProbe, assert_exactly_causal, dependence, randomize


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape,filter_size", [((4, 5), 3), ((3, 4, 4), 3), ((5, 6), 5), ((2, 3, 5), 5)])
@pytest.mark.parametrize("attention_layers", [0, 1])
def test_pixelcnn_is_exactly_causal(shape, filter_size, attention_layers):
    layers = 4 if attention_layers else 8   # without attention the convolutions alone must reach everything
    model = randomize(PixelCNN(6, shape, hidden=8, residual=6, layers=layers, attention_layers=attention_layers,
                               heads=2, filter_size=filter_size, dropout=0.0, cond_channels=3))
    probe = EmbeddingProbe(model.embed)
    x = torch.randint(0, 6, (1, *shape))
    c = torch.randn(1, 3, *shape)
    dep = dependence(lambda n: model(x.expand(n, *shape), c.expand(n, *c.shape[1:])), probe, shape)
    if attention_layers or len(shape) == 2 or filter_size == 5:
        assert_exactly_causal(dep)
    else:   # shallow 3D convolutions need not reach far corners of earlier frames, but never leak
        n = dep.shape[0]
        assert not (dep & torch.triu(torch.ones(n, n, dtype=torch.bool))).any()


def test_conditioning_reaches_every_position():
    model = randomize(PixelCNN(5, (3, 3, 3), 8, 6, 2, 1, 2, 3, 0.0, cond_channels=2))
    c = torch.randn(1, 2, 3, 3, 3, requires_grad=True)
    model(torch.randint(0, 5, (1, 3, 3, 3)), c)[0, :, 2, 2, 2].sum().backward()
    assert (c.grad.abs().sum(1) > 0).all()


def test_causal_conv_offsets_and_shapes():
    lo, hi, mask = first_h_offsets(3, 3, 3)
    conv = CausalConv(2, 4, lo, hi, mask)
    offsets = conv.offsets()
    assert all(d < (0, 0, 0) for d in offsets) and len(offsets) == 9 + 9 + 3 + 1
    x = torch.randn(2, 2, 3, 5, 6)
    assert conv(x).shape == (2, 4, 3, 5, 6)
    # a box that ends before 0 (rows strictly above) crops instead of padding
    above = CausalConv(1, 1, (-2, -1), (-1, 1))
    assert above(torch.randn(1, 1, 4, 4)).shape == (1, 1, 4, 4)
    assert above.offsets() == [(dy, dx) for dy in (-2, -1) for dx in (-1, 0, 1)]


def test_attention_every_five_layers():
    assert [i + 1 for i in attention_after(40, 8)] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [i + 1 for i in attention_after(20, 4)] == [5, 10, 15, 20]
    with pytest.raises(ValueError):
        attention_after(2, 3)
