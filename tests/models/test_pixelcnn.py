"""Masked convolutions, gated layers and causal attention of vqvideo.models.pixelcnn: exact causality."""

import itertools

import pytest
import torch

from vqvideo.models.pixelcnn import CausalConv, PixelCNN, attention_after, first_h_offsets

from causality import EmbeddingProbe, assert_exactly_causal, dependence, randomize


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape,filter_size,past_stream", [((4, 5), 3, False), ((3, 4, 4), 3, False),
                                                         ((5, 6), 5, False), ((2, 3, 5), 5, False),
                                                         ((3, 4, 4), 3, True), ((2, 3, 5), 5, True),
                                                         ((4, 3, 6), 3, True)])
@pytest.mark.parametrize("attention_layers", [0, 1])
def test_pixelcnn_is_exactly_causal(shape, filter_size, past_stream, attention_layers):
    layers = 4 if attention_layers else 8   # without attention the convolutions alone must reach everything
    model = randomize(PixelCNN(6, shape, hidden=8, residual=6, layers=layers, attention_layers=attention_layers,
                               heads=2, filter_size=filter_size, dropout=0.0, cond_channels=3,
                               past_stream=past_stream))
    probe = EmbeddingProbe(model.embed)
    x = torch.randint(0, 6, (1, *shape))
    c = torch.randn(1, 3, *shape)
    dep = dependence(lambda n: model(x.expand(n, *shape), c.expand(n, *c.shape[1:])), probe, shape)
    if attention_layers or len(shape) == 2 or filter_size == 5 or past_stream:
        assert_exactly_causal(dep)
    else:   # shallow 3D convolutions need not reach far corners of earlier frames, but never leak
        n = dep.shape[0]
        assert not (dep & torch.triu(torch.ones(n, n, dtype=torch.bool))).any()


def _flat(shape, t, y, x) -> int:
    return (t * shape[1] + y) * shape[2] + x


@pytest.mark.parametrize("past_stream", [False, True])
def test_only_the_past_stream_lets_convolutions_see_lower_rows_of_earlier_frames(past_stream):
    """Attention off, 12 layers (reach 13 rows, more than the grid): without the past stream, position (t, y, x)
    sees in frame t - D only rows <= y + D (k = 3), at any depth -- the blind spot; with it, every position of
    every earlier frame."""
    shape = (3, 6, 5)
    model = randomize(PixelCNN(6, shape, hidden=8, residual=6, layers=12, attention_layers=0, heads=2,
                               filter_size=3, dropout=0.0, cond_channels=0, past_stream=past_stream))
    probe = EmbeddingProbe(model.embed)
    x = torch.randint(0, 6, (1, *shape))
    dep = dependence(lambda n: model(x.expand(n, *shape)), probe, shape)
    for t, y, xx in itertools.product(*map(range, shape)):
        for tp, yp, xp in itertools.product(range(t), range(shape[1]), range(shape[2])):
            seen = bool(dep[_flat(shape, t, y, xx), _flat(shape, tp, yp, xp)])
            assert seen == (past_stream or yp <= y + (t - tp)), ((t, y, xx), (tp, yp, xp), seen)
    assert ("every position" in model.receptive_field()["convolutions"]["earlier_frames"]) == past_stream


@pytest.mark.parametrize("layers", [4, 6])
def test_past_stream_reach_is_what_the_summary_says(layers):
    """k = 3: the past stream reaches +-(layers + 1) rows and columns of earlier frames (4 layers on the demo's 8x8
    grid: +-5, so from (1, 0, 0) not the last two rows and columns of frame 0; 6 layers: all of it)."""
    shape = (3, 8, 8)
    model = randomize(PixelCNN(6, shape, hidden=8, residual=8, layers=layers, attention_layers=0, heads=2,
                               filter_size=3, dropout=0.0, cond_channels=0, past_stream=True))
    probe = EmbeddingProbe(model.embed)
    (grad,) = torch.autograd.grad(model(torch.randint(0, 6, (1, *shape)))[0, :, 1, 0, 0].sum(), probe.out)
    seen = grad[0, 0].abs().sum(-1) > 0                          # frame 0 [H, W]
    r = layers + 1
    near = (torch.arange(8)[:, None] <= r) & (torch.arange(8)[None, :] <= r)
    assert torch.equal(seen, near)
    described = model.receptive_field()["convolutions"]["earlier_frames"]
    assert described == ("every position (past stream)" if r >= 7 else f"+-{r} rows and columns around (y, x) (past stream)")


def test_past_stream_changing_any_earlier_token_changes_every_later_logit():
    """The perturbation form of the test above (tokens, not embeddings): with attention off, changing the token
    at any position of an earlier frame changes the logits at every position of every later frame, and never
    those at or before the changed position (in float64, so that rounding stays far below the thresholds)."""
    shape, k = (3, 4, 5), 6
    model = randomize(PixelCNN(k, shape, hidden=8, residual=6, layers=6, attention_layers=0, heads=2,
                               filter_size=3, dropout=0.0, cond_channels=0, past_stream=True)).double()
    positions = list(itertools.product(*map(range, shape)))
    x = torch.randint(0, k, (1, *shape))
    changed = x.repeat(len(positions), 1, 1, 1)
    for j, u in enumerate(positions):
        changed[(j, *u)] = (x[(0, *u)] + 1) % k
    with torch.no_grad():
        base, out = model(x), model(changed)
    delta = (out - base).abs().amax(1).flatten(1)             # [changed position j, logits position i]
    for j, (tj, _, _) in enumerate(positions):
        for i, (ti, _, _) in enumerate(positions):
            if i <= j:
                assert delta[j, i] <= 1e-12, (positions[j], positions[i], float(delta[j, i]))
            elif ti > tj:
                assert delta[j, i] > 1e-6, (positions[j], positions[i], float(delta[j, i]))


@pytest.mark.slow
@pytest.mark.parametrize("past_stream, unreached", [(False, 960), (True, 0)])
def test_paper_grid_blind_spot_without_the_past_stream(past_stream, unreached):
    """The paper's top grid [3, 32, 32] and depth (40 layers, k = 3), attention off: from (1, 0, 0), frame 0
    has 960 of its 1024 positions out of the convolutions' reach (only rows 0 and 1 seen); the past stream
    reaches all of them, and everything earlier from the far corners too."""
    shape = (3, 32, 32)
    model = randomize(PixelCNN(6, shape, hidden=8, residual=8, layers=40, attention_layers=0, heads=2,
                               filter_size=3, dropout=0.0, cond_channels=0, past_stream=past_stream))
    probe = EmbeddingProbe(model.embed)
    queries = [(1, 0, 0), (2, 0, 31), (1, 31, 31), (2, 31, 0)]
    logits = model(torch.randint(0, 6, (len(queries), *shape)))
    picked = torch.stack([logits[(i, slice(None), *u)] for i, u in enumerate(queries)])
    (grad,) = torch.autograd.grad(picked.sum(), probe.out)
    seen = grad.abs().sum(-1) > 0                               # [query, T, H, W]
    assert int((~seen[0, 0]).sum()) == unreached
    if past_stream:
        for i, (t, _, _) in enumerate(queries):
            assert seen[i, :t].all(), queries[i]


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
