"""The VQ-VAE's causal encoder option: conditioning frames encoded alone get the full clip's first codes."""

import pytest
import torch

from vqvideo.models.vqvae import VQVAE

SMALL = dict(hidden=8, res_hidden=4, res_layers=1, codebook_size=16, codebook_dim=4)


@pytest.mark.parametrize("time_padding", ["zeros", "replicate"])
def test_causal_encoder_cond_codes_equal_full_clip_codes(time_padding):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = VQVAE(**SMALL, causal_encoder=True, time_padding=time_padding).eval()
    x = torch.rand(2, 3, 16, 64, 64) * 2 - 1
    top, bottom = model.encode_codes(x)
    for frames in (4, 8, 12):  # any whole number of top blocks (4 frames each)
        cond_top, cond_bottom = model.encode_codes(x[:, :, :frames])
        assert torch.equal(cond_top, top[:, :frames // 4])
        assert torch.equal(cond_bottom, bottom[:, :frames // 2])
    # and the codes do depend on their own block: changing frame 3 changes top[:, 0]'s input
    y = x.clone()
    y[:, :, 3] = -y[:, :, 3]
    h = model.pre_top(model.enc_top(model.enc_bottom(x)))
    g = model.pre_top(model.enc_top(model.enc_bottom(y)))
    assert not torch.allclose(h[:, :, 0], g[:, :, 0])


def test_causal_encoder_ignores_later_frames_but_default_does_not():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 32, 32) * 2 - 1
    y = x.clone()
    y[:, :, 4:] = torch.rand_like(y[:, :, 4:]) * 2 - 1  # everything after the first top block changes
    for causal in (True, False):
        torch.manual_seed(0)
        model = VQVAE(**SMALL, causal_encoder=causal).eval()
        h = model.pre_top(model.enc_top(model.enc_bottom(x)))[:, :, 0]
        g = model.pre_top(model.enc_top(model.enc_bottom(y)))[:, :, 0]
        assert torch.allclose(h, g) == causal


def test_replicate_padding_codes_a_static_clip_the_same_at_every_timestep():
    torch.manual_seed(0)
    model = VQVAE(**SMALL, causal_encoder=True, time_padding="replicate").eval()
    frame = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    top, bottom = model.encode_codes(frame.expand(-1, -1, 16, -1, -1).contiguous())
    assert (top == top[:, :1]).all()
    # a transposed conv of stride 2 makes even and odd output timesteps from different taps: period 2
    assert (bottom[:, 2:] == bottom[:, :-2]).all()


def test_default_model_shapes_unchanged_by_causal_option():
    torch.manual_seed(0)
    model = VQVAE(**SMALL, causal_encoder=True).eval()
    x = torch.rand(1, 3, 16, 64, 64) * 2 - 1
    top, bottom = model.encode_codes(x)
    assert top.shape == (1, 4, 8, 8) and bottom.shape == (1, 8, 16, 16)
    assert model.decode_codes(top, bottom).shape == x.shape
    with pytest.raises(ValueError, match="time_padding"):
        VQVAE(**SMALL, time_padding="reflect")
