"""Top and bottom priors: exact causality with attention and conditioning, the shapes of Tables 4-8 (reduced
widths), overfitting a tiny latent set, and the naive reference sampler."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from causality import EmbeddingProbe, assert_exactly_causal, dependence, randomize
from vqvideo.models.bottom_prior import BottomPrior
from vqvideo.models.conditioning import past_window
from vqvideo.models.top_prior import TopPrior
from vqvideo.sampling.naive import draw, sample_bottom, sample_top

K = 6


pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(hidden=8, residual=8, heads=2, embed_dim=4, cond_channels=4, cond_hidden=8, cond_residual=4)


def top_prior(shape=(3, 3, 3), **kw):
    return TopPrior(K, shape, layers=kw.pop("layers", 5), attention_layers=kw.pop("attention_layers", 1), cond_layers=1,
                    **{**SMALL, **kw})


def bottom_prior(shape=(4, 4), **kw):
    return BottomPrior(K, shape, layers=kw.pop("layers", 5), attention_layers=1, cond_blocks=1, filter_size=3,
                       **{**SMALL, **kw})


@pytest.mark.parametrize("past_stream, attention_layers", [(False, 1), (True, 1), (True, 0)])
def test_top_prior_is_exactly_causal_and_conditioning_is_free(past_stream, attention_layers):
    # without attention, only the past stream lets 5 layers reach every position of the earlier frames
    prior = randomize(top_prior(past_stream=past_stream, attention_layers=attention_layers))
    probe = EmbeddingProbe(prior.pixelcnn.embed)
    x = torch.randint(0, K, (1, 3, 3, 3))
    ct = torch.randint(0, K, (1, 1, 3, 3))
    cb = torch.randint(0, K, (1, 2, 6, 6))
    assert_exactly_causal(dependence(
        lambda n: prior(x.expand(n, -1, -1, -1), ct.expand(n, -1, -1, -1), cb.expand(n, -1, -1, -1)),
        probe, (3, 3, 3)))
    # the conditioning frames' latents influence the very first position
    emb = EmbeddingProbe(prior.conditioning.embed_bottom)
    prior(x, ct, cb)[0, :, 0, 0, 0].sum().backward()
    assert emb.out.grad.abs().sum() > 0


def test_bottom_prior_is_exactly_causal_within_a_timestep():
    prior = randomize(bottom_prior())
    probe = EmbeddingProbe(prior.pixelcnn.embed)
    bottom = torch.randint(0, K, (1, 8, 4, 4))
    top = torch.randint(0, K, (1, 4, 2, 2))
    for n in (2, 5):
        steps = torch.tensor([[n]])
        dep = dependence(lambda m: prior(bottom.expand(m, -1, -1, -1), top.expand(m, -1, -1, -1),
                                         steps.expand(m, 1))[:, 0], probe, (4, 4))
        assert_exactly_causal(dep)


def test_bottom_prior_sees_its_past_window_and_the_top():
    prior = randomize(bottom_prior())
    emb_past = EmbeddingProbe(prior.conditioning.embed_past)
    emb_top = EmbeddingProbe(prior.conditioning.embed_top)
    bottom = torch.randint(0, K, (1, 8, 4, 4))
    prior(bottom, torch.randint(0, K, (1, 4, 2, 2)), torch.tensor([[6]]))[0, 0, :, 0, 0].sum().backward()
    g = emb_past.out.grad[0, 0].abs().sum((-1, -2, -3))      # [window]: timesteps 2..5 all matter
    assert (g > 0).all()
    assert emb_top.out.grad.abs().sum() > 0


def test_past_window_pads_before_the_clip():
    bottom = torch.arange(8).view(1, 8, 1, 1).expand(2, 8, 2, 2)
    w = past_window(bottom, torch.tensor([[2, 7], [3, 4]]), 4, pad_code=99)
    assert w[0, 0, :, 0, 0].tolist() == [99, 99, 0, 1]
    assert w[0, 1, :, 0, 0].tolist() == [3, 4, 5, 6]
    assert w[1, 0, :, 1, 1].tolist() == [99, 0, 1, 2]


def test_paper_shapes_with_reduced_widths():
    """Table 4 input sizes and Tables 5-8 stack shapes, with small channel counts."""
    top = TopPrior(512, (3, 32, 32), layers=5, attention_layers=1, **SMALL).eval()
    ct, cb = torch.randint(0, 512, (1, 1, 32, 32)), torch.randint(0, 512, (1, 2, 64, 64))
    c = top.conditioning
    up = c.up(c.embed_top(ct).permute(0, 4, 1, 2, 3))
    assert up.shape == (1, 4, 2, 64, 64)                       # 32x32 upsampled to 64x64x2
    assert c.down(torch.cat([up, up], 1)).shape == (1, 4, 1, 32, 32)   # down to 32x32 (x256 in the paper)
    assert top.condition(ct, cb).shape == (1, 8, 3, 32, 32)   # 32x32x3 (x512 in the paper)
    assert top(torch.randint(0, 512, (1, 3, 32, 32)), ct, cb).shape == (1, 512, 3, 32, 32)

    bot = BottomPrior(512, (64, 64), layers=5, attention_layers=1, cond_blocks=2, filter_size=5, **SMALL).eval()
    up = bot.upsample_top(torch.randint(0, 512, (1, 4, 32, 32)))
    assert up.shape == (1, 8, 8, 64, 64)                       # 64x64x8 (x1024 in the paper)
    past = torch.randint(0, 513, (1, 4, 64, 64))
    assert bot.conditioning.past_features(past).shape == (1, 4, 64, 64)   # 4 timesteps down to 64x64
    assert bot.condition(up[:, :, 3], past).shape == (1, 8, 64, 64)
    logits = bot(torch.randint(0, 512, (1, 8, 64, 64)), torch.randint(0, 512, (1, 4, 32, 32)), torch.tensor([[2, 7]]))
    assert logits.shape == (1, 2, 512, 64, 64)


def test_paper_config_parameter_counts():
    """The full Table 4-8 models build (on the meta device: no memory) with 40/20 layers, 8/4 attention layers."""
    from vqvideo.config import load_config
    from vqvideo.train.priors import build_prior

    cfg = load_config("config/config.yaml")
    paper = cfg.top_prior.model
    assert paper.past_stream   # the paper config's choice (config/config.yaml says why)
    assert cfg.top_prior.corrupt_inputs == 0 and cfg.bottom_prior.corrupt_inputs == 0   # the paper's teacher forcing
    with torch.device("meta"):
        top, bottom = TopPrior(512, past_stream=True), BottomPrior(512)
        without = TopPrior(512, past_stream=False)
    assert len(top.pixelcnn.layers) == 40 and len(top.pixelcnn.attention) == 8
    assert all(layer.p_conv is not None for layer in top.pixelcnn.layers)
    assert top.pixelcnn.layers[0].p_conv.convs[0].kernel == (1, 3, 3)   # unmasked 3x3 within a frame
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 1.4 < n(top) / n(without) < 1.5                              # the past stream's cost: +45%
    assert len(bottom.pixelcnn.layers) == 20 and len(bottom.pixelcnn.attention) == 4
    assert len(bottom.conditioning.blocks) == 20 and len(top.conditioning.blocks) == 4
    assert bottom.pixelcnn.layers[0].h_conv.kernel == (1, 3)   # filter 5: row y, columns x-2..x


def _tiny_latents(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randint(0, K, s, generator=g)  # noqa: E731
    return {"top": r(n, 4, 2, 2), "bottom": r(n, 8, 4, 4), "cond_top": r(n, 1, 2, 2), "cond_bottom": r(n, 2, 4, 4)}


@pytest.mark.slow
@pytest.mark.parametrize("level", ["top", "bottom"])
def test_tiny_latent_set_can_be_overfit(level):
    torch.manual_seed(0)
    batch = _tiny_latents()
    prior = top_prior((3, 2, 2), hidden=32, residual=32, layers=3) if level == "top" else \
        bottom_prior((4, 4), hidden=32, residual=32, layers=3)
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(150):
        if level == "top":
            x, ct, cb = TopPrior.split(batch)
            loss = F.cross_entropy(prior(x, ct, cb), x)
        else:
            bottom, top = BottomPrior.split(batch)
            steps = torch.arange(2, 8).expand(4, 6)
            loss = F.cross_entropy(prior(bottom, top, steps).transpose(1, 2), BottomPrior.targets(bottom, steps))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, loss.item()     # from log(6) = 1.79 nats


def test_gumbel_draw_matches_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, 2.0]]).expand(20000, 3)
    tokens = draw(logits, torch.rand(20000, 3, generator=g), temperature=1.0)
    freq = torch.bincount(tokens, minlength=3).float() / 20000
    assert torch.allclose(freq, torch.softmax(logits[0], 0), atol=0.015)


@pytest.mark.slow
def test_naive_samplers_shapes_and_reproducibility():
    top_p, bot_p = randomize(top_prior((3, 2, 2))), randomize(bottom_prior((4, 4)))
    data = _tiny_latents(2)
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(7)
        top = sample_top(top_p, (data["cond_top"], data["cond_bottom"]), 1.0, g)
        bottom = sample_bottom(bot_p, top, data["cond_bottom"], 1.0, g)
        runs.append((top, bottom))
    top, bottom = runs[0]
    assert top.shape == (2, 4, 2, 2) and bottom.shape == (2, 8, 4, 4)
    assert torch.equal(top[:, :1], data["cond_top"]) and torch.equal(bottom[:, :2], data["cond_bottom"])
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert top[:, 1:].unique().numel() > 1 and bottom[:, 2:].unique().numel() > 1  # sampled, not one code
    with pytest.raises(ValueError):
        sample_top(top_p.train(), (data["cond_top"], data["cond_bottom"]))


def write_random_latents(folder, split, n, k, seed, shards=1):
    """Latent shards in encode's layout (demo-like small sizes) with random codes."""
    from vqvideo.data.shards import write_shard

    rng = np.random.default_rng(seed)
    for s in range(shards):
        r = lambda *shape: rng.integers(0, k, (n, *shape)).astype(np.int16)  # noqa: E731
        write_shard(folder / split / f"shard-{s:05d}.h5",
                    {"top": r(4, 2, 2), "bottom": r(8, 4, 4), "cond_top": r(1, 2, 2), "cond_bottom": r(2, 4, 4),
                     "clip": np.arange(n, dtype=np.int64) + s * n})


TINY_RAW = {
    "vqvae": {"model": {"codebook_size": K}},
    "top_prior": {"model": {"hidden": 8, "residual": 8, "layers": 2, "attention_layers": 1, "heads": 2,
                            "embed_dim": 4, "cond_channels": 4, "cond_hidden": 8, "cond_residual": 4, "cond_layers": 1},
                  "train": {"batch_size": 4, "steps": 3, "num_workers": 0, "eval_every": 2, "eval_batches": 1,
                            "log_every": 1, "threads": 1}},
    "bottom_prior": {"model": {"hidden": 8, "residual": 8, "layers": 2, "attention_layers": 1, "heads": 2,
                               "filter_size": 3, "embed_dim": 4, "cond_channels": 4, "cond_hidden": 8,
                               "cond_residual": 4, "cond_blocks": 1},
                     "slices_per_clip": 2,
                     "train": {"batch_size": 4, "steps": 3, "num_workers": 0, "eval_every": 2, "eval_batches": 1,
                               "log_every": 1, "threads": 1}},
    "evaluation": {"split": "val"},
}


@pytest.mark.slow
@pytest.mark.parametrize("level", ["top", "bottom"])
def test_train_prior_cli_writes_checkpoint_and_metrics(tmp_path, level):
    import yaml

    from vqvideo.cli import main
    from vqvideo.runtime.checkpoint import load_model
    from vqvideo.train.priors import build_prior

    write_random_latents(tmp_path / "latents", "train", 6, K, 0, shards=2)
    write_random_latents(tmp_path / "latents", "val", 3, K, 1)
    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump({**TINY_RAW, "results": str(tmp_path / "results")}))
    assert main(["train-prior", "--configfile", str(cfgfile), "--level", level,
                 "--latents", str(tmp_path / "latents")]) == 0
    out = tmp_path / "results" / "priors" / level
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val_latents"] == 3 * (3 * 2 * 2 if level == "top" else 6 * 4 * 4)
    # random codes: the unigram baseline is about log2(K) bits, and the untrained prior is not far from it
    assert abs(metrics["unigram_bits_per_latent"] - np.log2(K)) < 0.3
    assert 0 < metrics["val_bits_per_latent"] < 2 * np.log2(K)
    assert metrics["relative_improvement"] == pytest.approx(
        1 - metrics["val_bits_per_latent"] / metrics["unigram_bits_per_latent"])
    for name in ("checkpoint.pt", "log.jsonl", "loss.png", "bits.png"):
        assert (out / name).is_file(), name
    model, ckpt = load_model(out / "checkpoint.pt", lambda c: build_prior(level, c))
    assert ckpt["kind"] == f"{level}_prior" and ckpt["step"] == 3
    assert type(model).__name__ == ("TopPrior" if level == "top" else "BottomPrior")
    # the shapes come from the latents: top predicts timesteps 1..3, bottom 2..7
    assert tuple(ckpt["model_config"]["shape"]) == ((3, 2, 2) if level == "top" else (4, 4))


def test_in_memory_latents_equal_the_latent_dataset(tmp_path):
    from vqvideo.data.latents import LatentDataset
    from vqvideo.train.priors import InMemoryLatents, code_counts, latent_set

    write_random_latents(tmp_path, "train", 5, K, 3, shards=2)
    disk = LatentDataset(tmp_path, "train")
    mem = latent_set(tmp_path, "train")
    assert isinstance(mem, InMemoryLatents) and len(mem) == len(disk) == 10
    for i in (0, 4, 5, 9):
        a, b = disk[i], mem[i]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    # the unigram counts cover exactly the modelled codes: top timesteps 1..3, bottom timesteps 2..7
    top = torch.stack([disk[i]["top"][1:] for i in range(10)])
    assert code_counts(disk, "top", K).tolist() == torch.bincount(top.flatten(), minlength=K).tolist()
    assert code_counts(mem, "bottom", K).sum() == 10 * 6 * 4 * 4


@pytest.mark.parametrize("attention_layers, past_stream", [(0, False), (1, False), (0, True), (1, True)])
def test_every_parameter_gets_a_gradient(attention_layers, past_stream):
    """DDP runs with find_unused_parameters=False: no parameter may be left out of the loss."""
    batch = _tiny_latents(2)
    top = top_prior((3, 2, 2), attention_layers=attention_layers, past_stream=past_stream)
    x, ct, cb = TopPrior.split(batch)
    F.cross_entropy(top(x, ct, cb), x).backward()
    bot = bottom_prior()
    bottom, t4 = BottomPrior.split(batch)
    steps = torch.tensor([[2], [6]])
    F.cross_entropy(bot(bottom, t4, steps).transpose(1, 2), BottomPrior.targets(bottom, steps)).backward()
    for model in (top, bot):
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, missing


def test_codes_outside_the_codebook_are_refused(tmp_path):
    from vqvideo.data.latents import LatentDataset
    from vqvideo.train.priors import code_counts

    write_random_latents(tmp_path, "train", 3, K + 1, 0)   # codes up to K: one too many
    with pytest.raises(ValueError, match="outside the codebook"):
        code_counts(LatentDataset(tmp_path, "train"), "bottom", K)


@pytest.mark.slow
def test_summary_reports_both_priors():
    from vqvideo.config import load_config
    from vqvideo.summary import summarize

    s = summarize(load_config("config/config.yaml"))
    assert s["top_prior"]["logits_shape"] == [512, 3, 32, 32]
    assert s["bottom_prior"]["logits_shape"] == [512, 64, 64]
    assert s["top_prior"]["attention_after_layers"] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert s["bottom_prior"]["receptive_field"]["with_attention"] == "the whole causal past"
    assert s["top_prior"]["parameters"] > s["bottom_prior"]["parameters"] > 10 ** 8


def test_corrupt_codes_replaces_the_share_asked_and_keeps_the_conditioning():
    from vqvideo.train.priors import corrupt_codes

    codes = torch.zeros(64, 8, 16, 16, dtype=torch.long)
    torch.manual_seed(0)
    assert corrupt_codes(codes, 0.0, 1000, keep=2) is codes
    noisy = corrupt_codes(codes, 0.25, 1000, keep=2)
    assert noisy.dtype == codes.dtype and noisy.shape == codes.shape
    assert (noisy[:, :2] == 0).all()                          # the conditioning timesteps as given
    changed = float((noisy[:, 2:] != 0).float().mean())
    assert 0.23 < changed < 0.27, changed                     # 0.25 * (1 - 1/1000), over 98k positions
    assert noisy.max() >= 900                                 # uniformly random codes, not a fixed one


@pytest.mark.parametrize("level", ["top", "bottom"])
def test_corrupted_inputs_change_what_the_prior_reads_not_its_targets(level):
    """The loss with corrupt_inputs equals the cross-entropy of the clean targets under the logits of the
    corrupted inputs, drawn from the same random state."""
    from vqvideo.train.priors import bottom_loss_fn, corrupt_codes, random_steps, top_loss_fn

    torch.manual_seed(0)
    batch = _tiny_latents()
    prior = top_prior((3, 2, 2)) if level == "top" else bottom_prior((4, 4))
    prior.eval()  # no dropout: the two computations below must draw the same random numbers only
    loss_fn = top_loss_fn(0.5) if level == "top" else bottom_loss_fn(2, 0.5)
    torch.manual_seed(1)
    loss, _ = loss_fn(prior, batch)
    torch.manual_seed(1)
    if level == "top":
        x, ct, cb = TopPrior.split(batch)
        expected = F.cross_entropy(prior(corrupt_codes(x, 0.5, K), ct, cb), x)
    else:
        bottom, top = BottomPrior.split(batch)
        steps = random_steps(bottom.shape[0], prior.first, prior.timesteps, 2, bottom.device)
        noisy = corrupt_codes(bottom, 0.5, K, keep=prior.first)
        expected = F.cross_entropy(prior(noisy, top, steps).transpose(1, 2), BottomPrior.targets(bottom, steps))
    clean, _ = (top_loss_fn() if level == "top" else bottom_loss_fn(2))(prior, batch)
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, clean)
