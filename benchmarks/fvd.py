"""FVD costs: I3D clips/s, the TF1 resize against torch's own, and a whole demo-sized evaluation.

    python benchmarks/fvd.py [--device cpu|cuda] [--clips 4] [--skip-eval] [--parity] [--out PATH]

1. I3D forward on 16-frame clips at 224x224 (preprocessed outside the timing): clips/s.
2. Preprocessing (uint8 64x64 -> 224x224 in [-1, 1]): our TF1 resize_bilinear vs torch interpolate(bilinear),
   frames/s, ratio (the baseline measured in the same run).
3. ``evaluate_fvd(64)`` + ``evaluate_quality`` on demo-sized data written to a temporary folder in the contract
   layout (16 conditioning clips x 2 samples at 64x64, copy-last, reconstructions): seconds cold (every set
   through I3D) and warm (features from the content-keyed cache); the ratio is the cache's saving.
``--parity`` also reports max |logit difference| against tests/metrics/i3d_reference.npz on this device
(TF32 off). Prints a table and writes JSON to benchmarks/results/fvd.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vqvideo.metrics import fvd as F  # noqa: E402
from vqvideo.metrics.i3d import load_i3d  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after one warm-up."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench_i3d(device, clips: int, repeat: int) -> dict:
    model = load_i3d(device)
    rng = np.random.default_rng(0)
    videos = torch.from_numpy(rng.integers(0, 256, (clips, 16, 64, 64, 3), dtype=np.uint8)).to(device)
    x = F.preprocess(videos)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    with torch.inference_mode():
        sec = timed(lambda: model(x), device, repeat)
    return {"clips": clips, "frames": 16, "seconds": sec, "clips_per_s": clips / sec}


def bench_resize(device, frames: int, repeat: int) -> dict:
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)).to(device)

    def ours():
        return 2.0 * F.resize_bilinear_tf1(x, (224, 224)) / 255.0 - 1.0

    def torch_builtin():
        y = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2).float(), size=(224, 224), mode="bilinear",
                                            align_corners=False)
        return 2.0 * y.permute(0, 2, 3, 1) / 255.0 - 1.0

    t_ours, t_torch = timed(ours, device, repeat), timed(torch_builtin, device, repeat)
    return {"frames": frames, "tf1_frames_per_s": frames / t_ours, "torch_frames_per_s": frames / t_torch,
            "ratio_tf1_over_torch_time": t_ours / t_torch}


def _demo_tree(root: Path, n_clips: int = 16, k: int = 2, size: int = 64) -> Path:
    """A results folder in the contract layout: data shards + manifest, samples, copy-last, reconstructions."""
    from vqvideo.data.shards import write_shard

    res = root / "results"
    rng = np.random.default_rng(0)
    t, y, x = np.meshgrid(np.arange(16), np.arange(size), np.arange(size), indexing="ij")
    clips = np.stack([np.stack([(x * 4 + t * (i % 5 + 1) * 3) % 256, (y * 4 - t * 2 * i) % 256,
                                np.full_like(x, 15 * i)], -1) for i in range(n_clips)]).astype(np.uint8)
    write_shard(res / "data" / "shards" / "val-00000.h5", {"clips": clips})
    with open(res / "data" / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["shard", "index", "source", "start_s", "label", "split"])
        w.writerows([["val-00000.h5", i, f"v{i}.mp4", 0.0, "demo", "val"] for i in range(n_clips)])
    ids = np.arange(n_clips)
    noisy = np.repeat(clips, k, axis=0).astype(np.int16)
    noisy[:, 4:] += rng.integers(-30, 30, noisy[:, 4:].shape, dtype=np.int16)
    write_shard(res / "samples" / "shard-00000.h5", {"videos": noisy.clip(0, 255).astype(np.uint8),
                                                     "clip": np.repeat(ids, k), "sample": np.tile(np.arange(k), n_clips)})
    copy = clips.copy()
    copy[:, 4:] = clips[:, 3:4]
    write_shard(res / "baselines" / "copy_last" / "shard-00000.h5", {"videos": copy, "clip": ids,
                                                                     "sample": np.zeros(n_clips, np.int64)})
    write_shard(res / "latents" / "val" / "recon-00000.h5", {"videos": clips, "clip": ids})
    return res


def bench_evaluation(device, n_clips: int) -> dict:
    from vqvideo.config import config_from_dict
    from vqvideo.metrics.evaluate import evaluate_fvd, evaluate_quality

    with tempfile.TemporaryDirectory() as tmp:
        res = _demo_tree(Path(tmp), n_clips)
        cfg = config_from_dict({"results": str(res), "evaluation": {"resolutions": [64], "batch_size": 4,
                                                                    "device": str(device)}})
        times = []
        for _ in range(2):  # cold, then warm (features cached by content)
            t = time.perf_counter()
            out = evaluate_fvd(cfg, 64)
            evaluate_quality(cfg)
            times.append(time.perf_counter() - t)
    return {"videos_through_i3d": out["n_videos"]["samples"] + out["n_videos"]["real"]
            + out["n_videos"]["copy_last"] + out["n_videos"]["recon"],
            "cold_s": times[0], "warm_s": times[1], "ratio_warm_over_cold": times[1] / times[0],
            "fvd_64": out["value"], "fvd_star_64": out["fvd_star"]["value"],
            "copy_last_fvd_64": out["baselines"]["copy_last"]["value"]}


def parity(device) -> dict:
    ref = np.load(ROOT / "tests" / "metrics" / "i3d_reference.npz")
    model = load_i3d(device)
    errs = {}
    for case in ("case_noise", "case_bikes", "case_carphone", "case_pattern", "set_a", "set_b"):
        ours = F.i3d_logits(ref[f"{case}/videos"], device=device, model=model, progress=False)
        errs[case] = float(np.abs(ours - ref[f"{case}/logits"]).max())
    return errs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--clips", type=int, default=None, help="clips per I3D batch (cpu 2, cuda 32)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--eval-clips", type=int, default=16, help="conditioning clips of the demo-sized evaluation")
    p.add_argument("--parity", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fvd.json")
    args = p.parse_args()
    device = torch.device(args.device)
    clips = args.clips or (32 if device.type == "cuda" else 2)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    result = {"device": str(device), "device_name": name, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "i3d": bench_i3d(device, clips, args.repeat),
              "resize": bench_resize(device, 64, args.repeat)}
    if args.parity:
        result["parity_max_abs_logit_diff"] = parity(device)
    if not args.skip_eval:
        result["evaluation_demo"] = bench_evaluation(device, args.eval_clips)
    i3d, rs = result["i3d"], result["resize"]
    print(f"\nFVD benchmark on {device} ({name}, torch {torch.__version__}, {result['threads']} threads)")
    print(f"{'what':44s} {'value':>12s}")
    print(f"{'I3D 16x224x224 clips/s (batch %d)' % clips:44s} {i3d['clips_per_s']:12.2f}")
    print(f"{'TF1 resize 64->224 frames/s':44s} {rs['tf1_frames_per_s']:12.1f}")
    print(f"{'torch interpolate 64->224 frames/s':44s} {rs['torch_frames_per_s']:12.1f}")
    print(f"{'ratio TF1 / torch time':44s} {rs['ratio_tf1_over_torch_time']:12.2f}")
    if "parity_max_abs_logit_diff" in result:
        print(f"{'max |logit - original| (all cases)':44s} {max(result['parity_max_abs_logit_diff'].values()):12.2e}")
    if "evaluation_demo" in result:
        e = result["evaluation_demo"]
        print(f"{'demo evaluation, %d videos, cold s' % e['videos_through_i3d']:44s} {e['cold_s']:12.1f}")
        print(f"{'demo evaluation, warm (cached) s':44s} {e['warm_s']:12.1f}")
        print(f"{'ratio warm / cold':44s} {e['ratio_warm_over_cold']:12.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
