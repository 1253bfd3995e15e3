"""VQ-VAE throughput: training clips/s (through the real harness and DataLoader), the share of step time spent
waiting for data, encoding clips/s, and (on CUDA, --paper) one paper-size step's time and peak memory.

    python benchmarks/vqvae.py --configfile config/demo.yaml --data results/data [--steps 20] [--paper]

Baselines measured in the same run: the training step on a batch already in memory (so the ratio shows what
the data pipeline costs), the same step on whole frames when the config trains on windows (``vqvae.crop``: the
ratio shows what cropping buys) and encoding with batch size 1 (so the ratio shows what batching buys).
Writes benchmarks/results/vqvae.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vqvideo.models.vqvae import VQVAE
from vqvideo.train.vqvae import vqvae_loss


def train_throughput(cfg, data: Path, steps: int) -> dict:
    """clips/s and data-wait share of ``steps`` harness steps (the log's last window)."""
    from vqvideo.data.datasets import ClipDataset
    from vqvideo.train.harness import fit

    tcfg = dataclasses.replace(cfg.vqvae.train, steps=steps, log_every=steps - 2, eval_every=10**9,
                               checkpoint_every=10**9)
    mc = dataclasses.asdict(cfg.vqvae.model)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        loss_fn = functools.partial(vqvae_loss, crop=cfg.vqvae.crop)
        fit(VQVAE(**mc), loss_fn, ClipDataset(data, "train"), tcfg, Path(tmp), mc, kind="vqvae")
        wall = time.perf_counter() - t0
        records = [json.loads(line) for line in open(Path(tmp) / "log.jsonl")]
    last = records[-1]  # steps [steps-2 .. steps]: after the first window's warm-up
    first = records[0]
    return {"clips_per_s": tcfg.batch_size / last["sec_per_step"], "sec_per_step": last["sec_per_step"],
            "data_wait_share": last["data_wait"], "data_wait_share_with_warmup": first["data_wait"],
            "wall_s": wall, "batch_size": tcfg.batch_size, "num_workers": tcfg.num_workers}


def _device() -> torch.device:
    """Where the harness trains (its own choice: CUDA when there is one, unless VQVIDEO_DEVICE=cpu), so that
    every baseline runs there too."""
    from vqvideo.runtime import distributed as dist

    return dist.setup()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_in_memory(cfg, clips: torch.Tensor, steps: int, crop: int | None) -> dict:
    """The same steps on one batch already in memory: the baseline without any data pipeline."""
    device = _device()
    torch.manual_seed(0)
    model = VQVAE(**dataclasses.asdict(cfg.vqvae.model)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.vqvae.train.lr)
    clips = clips.to(device)
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        loss, _ = vqvae_loss(model, clips, crop)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    sec = float(np.median(times[steps // 2:]))  # the later half: after cuDNN's kernel search on CUDA
    return {"clips_per_s": len(clips) / sec, "sec_per_step": sec}


def encode_throughput(model: VQVAE, clips: np.ndarray, batch_size: int) -> dict:
    from vqvideo.encode import encode_clips

    device = next(model.parameters()).device
    encode_clips(model, clips[:batch_size], 4, batch_size, device)  # warm-up
    t0 = time.perf_counter()
    encode_clips(model, clips, 4, batch_size, device)
    sec = time.perf_counter() - t0
    return {"clips_per_s": len(clips) / sec, "batch_size": batch_size}


def paper_step(batch: int = 16, steps: int = 6, configfile: str = "config/config.yaml") -> dict:
    """One training step of the paper's VQ-VAE (``configfile``, Table 3) at 16x256x256, batch ``batch``, bf16 AMP,
    on CUDA: the step time's median over ``steps`` (after one warm-up) and the peak memory."""
    from vqvideo.config import load_config

    device = torch.device("cuda")
    torch.manual_seed(0)
    paper = load_config(configfile).vqvae
    model = VQVAE(**dataclasses.asdict(paper.model)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=paper.train.lr, fused=True)
    x = torch.rand(batch, 3, 16, 256, 256, device=device) * 2 - 1
    torch.backends.cudnn.benchmark = True
    times = []
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, out = model(x)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    with torch.inference_mode():
        model.eval()
        model.encode_codes(x)  # warm-up: cuDNN picks its kernels for the inference shapes
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.encode_codes(x)
        torch.cuda.synchronize()
        enc = time.perf_counter() - t0
    return {"device": torch.cuda.get_device_name(device), "batch_size": batch,
            "sec_per_step": float(np.median(times[1:])), "clips_per_s": batch / float(np.median(times[1:])),
            "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30,
            "encode_clips_per_s": batch / enc, "parameters": sum(p.numel() for p in model.parameters()),
            "config": configfile}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", default="config/demo.yaml")
    ap.add_argument("--data", type=Path, default=Path("results/data"))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--encode-clips", type=int, default=32)
    ap.add_argument("--paper", action="store_true", help="also time one paper-size step (needs CUDA)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/vqvae.json"))
    args = ap.parse_args()
    from vqvideo.config import load_config

    cfg = load_config(args.configfile)
    if cfg.vqvae.train.threads:
        torch.set_num_threads(cfg.vqvae.train.threads)

    from vqvideo.data.datasets import load_clips, read_manifest

    result = {"config": args.configfile, "torch_threads": torch.get_num_threads()}
    result["train"] = train_throughput(cfg, args.data, args.steps)
    val = [r["clip"] for r in read_manifest(args.data) if r["split"] == cfg.evaluation.split][:args.encode_clips]
    clips = load_clips(args.data, val)
    batch = torch.from_numpy(clips[:cfg.vqvae.train.batch_size])
    memory_steps = max(4, args.steps // 3)
    result["train_in_memory"] = train_in_memory(cfg, batch, memory_steps, cfg.vqvae.crop)
    if cfg.vqvae.crop:
        result["train_whole_frames"] = train_in_memory(cfg, batch, memory_steps, None)
        result["train_in_memory"]["ratio_vs_whole_frames"] = (result["train_in_memory"]["clips_per_s"]
                                                              / result["train_whole_frames"]["clips_per_s"])
    result["train"]["ratio_vs_in_memory"] = result["train"]["clips_per_s"] / result["train_in_memory"]["clips_per_s"]
    torch.manual_seed(0)
    model = VQVAE(**dataclasses.asdict(cfg.vqvae.model)).to(_device()).eval()
    result["encode"] = encode_throughput(model, clips, cfg.encode.batch_size)
    result["encode_batch1"] = encode_throughput(model, clips[:8], 1)
    result["encode"]["ratio_vs_batch1"] = result["encode"]["clips_per_s"] / result["encode_batch1"]["clips_per_s"]
    if args.paper and torch.cuda.is_available():
        result["paper_step"] = paper_step()

    print(f"{'measure':<34}{'value':>12}")
    print(f"{'train clips/s (harness, loader)':<34}{result['train']['clips_per_s']:>12.2f}")
    print(f"{'train clips/s (in memory)':<34}{result['train_in_memory']['clips_per_s']:>12.2f}")
    print(f"{'  ratio':<34}{result['train']['ratio_vs_in_memory']:>12.2f}")
    if "train_whole_frames" in result:
        print(f"{'train clips/s (whole frames)':<34}{result['train_whole_frames']['clips_per_s']:>12.2f}")
        print(f"{'  ratio (%dx%d windows)' % (cfg.vqvae.crop, cfg.vqvae.crop):<34}"
              f"{result['train_in_memory']['ratio_vs_whole_frames']:>12.2f}")
    print(f"{'data wait share of step time':<34}{result['train']['data_wait_share']:>12.1%}")
    print(f"{'encode clips/s (batch %d)' % cfg.encode.batch_size:<34}{result['encode']['clips_per_s']:>12.2f}")
    print(f"{'encode clips/s (batch 1)':<34}{result['encode_batch1']['clips_per_s']:>12.2f}")
    print(f"{'  ratio':<34}{result['encode']['ratio_vs_batch1']:>12.2f}")
    if "paper_step" in result:
        p = result["paper_step"]
        print(f"{'paper step s (b16, 16x256x256)':<34}{p['sec_per_step']:>12.3f}   {p['device']}")
        print(f"{'paper peak memory GiB':<34}{p['peak_mem_gb']:>12.2f}")
        print(f"{'paper encode clips/s':<34}{p['encode_clips_per_s']:>12.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
