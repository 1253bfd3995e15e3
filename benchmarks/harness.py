"""Overhead of the training harness against a bare PyTorch loop on the same model, data and optimiser.

    python benchmarks/harness.py [--steps 30] [--out benchmarks/results/harness.json]

The model is a small 3D-conv autoencoder on uint8 clips (the VQ-VAE's kind of work, without codebooks);
sizes grow on a GPU. Both loops use the same DataLoader settings, AdamW, clipping and (on CUDA) bf16
autocast; the first half of the steps is warm-up and not timed, and the bare loop runs before and after the
harness (its better time counts, so the GPU's clock ramp does not favour the harness). Prints a table and writes JSON with the
ratio harness / bare (goal: ~1.0) and the harness's share of step time waiting for data.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from vqvideo.config import TrainConfig
from vqvideo.train.harness import fit


class ConvAE(nn.Module):
    def __init__(self, width: int, depth: int = 1):
        super().__init__()
        layers = [nn.Conv3d(3, width, 4, (2, 4, 4), 1), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv3d(width, width, 3, 1, 1), nn.ReLU()]
        self.enc = nn.Sequential(*layers)
        self.dec = nn.Sequential(nn.ConvTranspose3d(width, 3, (4, 4, 4), (2, 4, 4), (1, 0, 0)))

    def forward(self, x):
        return self.dec(self.enc(x))


def loss_fn(model, batch):
    x = batch.permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # [B, T, H, W, 3] uint8 -> [B, 3, T, H, W]
    loss = nn.functional.mse_loss(model(x), x)
    return loss, {}


def bare_loop(model, data, cfg, device) -> float:
    """Seconds per step of a plain loop (second half of the steps)."""
    # one iterator over all steps, like the harness's stream (no epoch restarts to wait for)
    sampler = torch.utils.data.RandomSampler(data, num_samples=cfg.batch_size * cfg.steps)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                                         num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                                         persistent_workers=cfg.num_workers > 0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=device.type == "cuda")
    model.to(device).train()
    it, t0 = iter(loader), 0.0
    for step in range(cfg.steps):
        if step == cfg.steps // 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        batch = next(it)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, _ = loss_fn(model, batch.to(device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    loss.item()
    return (time.perf_counter() - t0) / (cfg.steps - cfg.steps // 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/harness.json")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    # GPU: a 16x128x128 clip batch of 16; CPU: small enough for a shared 2-core machine
    batch, t, hw, width, depth = (16, 16, 128, 256, 4) if cuda else (4, 8, 32, 16, 1)
    n = batch * 4
    data = torch.randint(0, 256, (n, t, hw, hw, 3), dtype=torch.uint8)
    cfg = TrainConfig(batch_size=batch, steps=args.steps, lr=1e-4, log_every=args.steps // 2,
                      checkpoint_every=10**9, eval_every=10**9, num_workers=args.workers, amp=True)

    if cuda:  # the settings fit() makes, so that both loops run the same kernels
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    bare_first = bare_loop(ConvAE(width, depth), data, cfg, device)  # also warms the GPU's clocks up
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        fit(ConvAE(width, depth), loss_fn, data, cfg, Path(tmp), model_config={"width": width, "depth": depth},
            kind="bench")
        log = [json.loads(line) for line in (Path(tmp) / "log.jsonl").read_text().splitlines()]
    timed = log[-1]  # the second half of the steps
    torch.manual_seed(0)
    bare = min(bare_first, bare_loop(ConvAE(width, depth), data, cfg, device))  # bare, harness, bare: best bare
    rows = {"device": torch.cuda.get_device_name() if cuda else "cpu",
            "clip": [batch, t, hw, hw, 3], "width": width, "depth": depth, "steps": args.steps, "workers": args.workers,
            "bare_sec_per_step": bare, "bare_first_sec_per_step": bare_first, "harness_sec_per_step": timed["sec_per_step"],
            "ratio_harness_over_bare": timed["sec_per_step"] / bare, "harness_data_wait": timed["data_wait"],
            "max_mem_gb": timed.get("max_mem_gb")}
    print(f"{'device':<28}{'bare s/step':>12}{'harness s/step':>16}{'ratio':>8}{'data_wait':>11}")
    print(f"{rows['device']:<28}{bare:>12.4f}{timed['sec_per_step']:>16.4f}"
          f"{rows['ratio_harness_over_bare']:>8.3f}{timed['data_wait']:>11.1%}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
