"""Hierarchical video VQ-VAE: Table 3 shapes, gradients, masking, metrics, summary."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vqvideo.config import load_config
from vqvideo.metrics.quality import bits_ratio, psnr, ssim
from vqvideo.models.vqvae import VQVAE, output_to_video, video_to_input

SMALL = dict(hidden=8, res_hidden=4, res_layers=1, codebook_size=16, codebook_dim=4)


def test_paper_strides_give_paper_latent_shapes():
    torch.manual_seed(0)
    model = VQVAE(**SMALL).eval()  # Table 3 kernels and strides (the defaults), reduced width
    x = torch.rand(1, 3, 16, 256, 256) * 2 - 1
    top, bottom = model.encode_codes(x)
    assert top.shape == (1, 4, 32, 32) and bottom.shape == (1, 8, 64, 64)
    assert top.dtype == bottom.dtype == torch.long
    assert model.latent_shapes(16, 256, 256) == {"top": [4, 32, 32], "bottom": [8, 64, 64]}
    cond_top, cond_bottom = model.encode_codes(x[:, :, :4])
    assert cond_top.shape == (1, 1, 32, 32) and cond_bottom.shape == (1, 2, 64, 64)


@pytest.mark.parametrize("bottom_sees_top", [True, False])
def test_demo_shapes_and_roundtrip(bottom_sees_top):
    torch.manual_seed(0)
    model = VQVAE(**SMALL, bottom_sees_top=bottom_sees_top).eval()
    x = torch.rand(2, 3, 16, 64, 64) * 2 - 1
    top, bottom = model.encode_codes(x)
    assert top.shape == (2, 4, 8, 8) and bottom.shape == (2, 8, 16, 16)
    recon = model.decode_codes(top, bottom)
    assert recon.shape == x.shape
    # decoding the codes is exactly the model's own reconstruction (eval mode: no mask, no EMA update)
    with torch.no_grad():
        forward_recon, _ = model(x)
    torch.testing.assert_close(recon, forward_recon)
    torch.testing.assert_close(model.reconstruct(x), recon)
    masked = model.reconstruct(x, mask_bottom=True)
    assert not torch.allclose(masked, recon)
    torch.testing.assert_close(masked, model.decode_codes(top, None))


def test_straight_through_gradients_reach_both_encoders():
    torch.manual_seed(0)
    model = VQVAE(**{**SMALL, "bottom_mask_rate": 0.0}).train()
    x = torch.rand(2, 3, 8, 32, 32) * 2 - 1
    _, out = model(x)
    # the reconstruction loss alone: only the straight-through estimator carries it into the encoders
    out["recon_loss"].backward()
    for module in (model.enc_bottom.down, model.enc_top.down, model.pre_top, model.pre_bottom):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0
    assert out["usage_top"] > 0 and out["perplexity_bottom"] > 1  # more than one bottom code in use


def test_bottom_mask_rate_masks_whole_clips_in_training():
    torch.manual_seed(0)
    model = VQVAE(**{**SMALL, "bottom_mask_rate": 1.0}).train()
    x = torch.rand(2, 3, 8, 32, 32) * 2 - 1
    before = copy.deepcopy(model).eval()  # the training step updates the codebooks after choosing the codes
    recon, out = model(x)
    assert out["masked"] == 1.0
    # with every clip masked, the training output is the decoder applied to the top level alone
    torch.testing.assert_close(recon.detach(), before.reconstruct(x, mask_bottom=True), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(recon.detach(), before.reconstruct(x), rtol=1e-4, atol=1e-4)


def test_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = VQVAE(**{**SMALL, "restart_threshold": 1.0}).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.linspace(-1, 1, 8 * 32 * 32).reshape(1, 1, 8, 32, 32).expand(2, 3, -1, -1, -1).contiguous()
    losses = []
    for _ in range(15):
        _, out = model(x)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["recon_loss"].detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_random_crop_takes_one_window_per_clip_in_every_frame():
    from vqvideo.train.vqvae import random_crop

    torch.manual_seed(0)
    clips = torch.randint(0, 256, (6, 4, 32, 40, 3), dtype=torch.uint8)
    crops = random_crop(clips, 16)
    assert crops.shape == (6, 4, 16, 16, 3)
    offsets = []
    for clip, crop in zip(clips, crops):
        windows = clip.unfold(1, 16, 1).unfold(2, 16, 1)  # [T, 17, 25, C, 16, 16]: every window of the frames
        match = (windows == crop.permute(0, 3, 1, 2)[:, None, None]).flatten(3).all(-1).all(0).nonzero()
        assert len(match) == 1  # one window, the same in every frame
        offsets.append(tuple(match[0].tolist()))
    assert len(set(offsets)) > 1  # each clip has its own window


def test_cropped_training_step_keeps_whole_frames_elsewhere():
    from vqvideo.train.vqvae import vqvae_loss

    torch.manual_seed(0)
    model = VQVAE(**SMALL).train()
    clips = torch.randint(0, 256, (2, 8, 32, 32, 3), dtype=torch.uint8)
    loss, metrics = vqvae_loss(model, clips, crop=16)
    loss.backward()
    assert torch.isfinite(loss) and model.enc_bottom.down.weight.grad is not None
    top, bottom = model.eval().encode_codes(video_to_input(clips))  # evaluation and encoding: whole frames
    assert top.shape == (2, 2, 4, 4) and bottom.shape == (2, 4, 8, 8)


def test_codebook_warnings_name_an_unused_level():
    from vqvideo.train.vqvae import codebook_warnings

    healthy = {"usage_top": 1.0, "perplexity_top": 150.0, "usage_bottom": 0.99, "perplexity_bottom": 105.0,
               "psnr_masked": 18.3}
    assert codebook_warnings(healthy) == []
    collapsed = {**healthy, "usage_top": 0.11, "perplexity_top": 12.3, "psnr_masked": 9.0}
    (warning,) = codebook_warnings(collapsed)
    assert "top codebook uses 11%" in warning and "9.0 dB" in warning and "bottom_mask_rate" in warning


def test_video_conversion_rounds():
    clips = torch.randint(0, 256, (1, 4, 8, 8, 3), dtype=torch.uint8)
    x = video_to_input(clips)
    assert x.shape == (1, 3, 4, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(output_to_video(x), clips)
    assert torch.equal(output_to_video(x + 0.6 / 127.5), (clips.int() + 1).clamp(max=255).to(torch.uint8))


def test_psnr_and_ssim():
    a = torch.full((1, 2, 16, 16, 3), 100, dtype=torch.uint8)
    b = a.clone()
    b[..., 0] += 10  # MSE = 100 / 3 over all values
    assert psnr(b, a).item() == pytest.approx(10 * np.log10(255 ** 2 / (100 / 3)))
    rng = np.random.default_rng(0)
    c = torch.from_numpy(rng.integers(0, 256, (2, 2, 16, 16, 3), dtype=np.uint8))
    assert ssim(c, c).tolist() == pytest.approx([1.0, 1.0])
    noisy = (c.int() + torch.from_numpy(rng.integers(-40, 40, c.shape))).clamp(0, 255)
    assert 0.5 < ssim(noisy, c).mean() < 0.99
    other = torch.from_numpy(rng.integers(0, 256, c.shape, dtype=np.uint8))
    assert abs(ssim(other, c).mean()) < 0.1


def test_bits_ratio_is_the_papers_one_point_three_percent():
    r = bits_ratio({"top": [4, 32, 32], "bottom": [8, 64, 64]}, 512, 16, 256, 256)
    assert r == pytest.approx(0.0132, abs=5e-4)


@pytest.mark.slow
def test_summary_reports_paper_shapes():
    out = subprocess.run([sys.executable, "-m", "vqvideo.cli", "summary", "--configfile", "config/config.yaml",
                          "--json"], capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)["vqvae"]
    assert s["latent_shapes"] == {"top": [4, 32, 32], "bottom": [8, 64, 64]}
    assert s["cond_latent_shapes"] == {"top": [1, 32, 32], "bottom": [2, 64, 64]}
    assert s["codebooks"] == {"top": [512, 64], "bottom": [512, 64]}
    assert s["output_shape"] == [3, 16, 256, 256]
    assert s["bits_ratio"] == pytest.approx(0.0132, abs=5e-4)
    assert s["parameters"] > 1_000_000


def test_config_builds_the_model():
    cfg = load_config("config/config.yaml")
    import dataclasses

    with torch.device("meta"):
        model = VQVAE(**dataclasses.asdict(cfg.vqvae.model))
    assert model.quant_top.num_codes == 512 and model.quant_top.beta == 0.25

