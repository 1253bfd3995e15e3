"""Training throughput of both priors, and the share of step time spent waiting for latents.

    python benchmarks/priors.py [--configfile config/demo.yaml] [--latents results/latents] [--steps 24]
    python benchmarks/priors.py --paper        # on a GPU: one paper-size (Tables 4-8) training step per prior

Default mode: each prior of the config trains ``--steps`` steps through the real harness (``fit``: DataLoader
over the latent shards, AdamW, logging) on ``--latents`` (random codes in the config's latent shapes when the
folder has no shards); the harness's own log gives seconds per step and the share of it spent waiting for the
next batch (goal: under 5%). Baseline in the same run: the same model's step on one batch already in memory
(no loader), so ``harness/bare`` is the throughput left after data loading and bookkeeping.

``--paper``: the paper-size priors on the GPU (bf16 autocast, fused AdamW); for each, the largest per-GPU
batch of a halving ladder that fits, its step time and peak memory. Writes benchmarks/results/priors.json
(``--paper``: priors_paper.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vqvideo.config import load_config  # noqa: E402
from vqvideo.data.shards import list_shards, write_shard  # noqa: E402
from vqvideo.summary import vqvae_section  # noqa: E402
from vqvideo.train.priors import bottom_loss_fn, build_prior, prior_model_config, top_loss  # noqa: E402


def latent_shapes(cfg) -> dict:
    s = vqvae_section(cfg)
    return {"top": s["latent_shapes"]["top"], "bottom": s["latent_shapes"]["bottom"],
            "cond_top": s["cond_latent_shapes"]["top"], "cond_bottom": s["cond_latent_shapes"]["bottom"]}


def random_latents(folder: Path, shapes: dict, k: int, n: int = 64) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        arrays = {name: rng.integers(0, k, (n, *shape)).astype(np.int16) for name, shape in shapes.items()}
        write_shard(folder / split / "shard-00000.h5", {**arrays, "clip": np.arange(n, dtype=np.int64)})


def tokens_per_step(level: str, conf: dict, batch: int, slices: int) -> int:
    if level == "top":
        return batch * int(np.prod(conf["shape"]))
    return batch * min(slices, conf["timesteps"] - conf["first"]) * int(np.prod(conf["shape"]))


def bare_step_seconds(model, loss_fn, batch: dict, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss, _ = loss_fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def bench_harness(cfg, latents: Path, steps: int) -> list[dict]:
    from torch.utils.data import default_collate

    from vqvideo.train.harness import fit
    from vqvideo.train.priors import latent_set

    rows = []
    train_set = latent_set(latents, "train")  # what train-prior uses: in memory when small (the demo)
    for level in ("top", "bottom"):
        section = cfg.top_prior if level == "top" else cfg.bottom_prior
        slices = cfg.bottom_prior.slices_per_clip
        loss_fn = top_loss if level == "top" else bottom_loss_fn(slices)
        tcfg = dataclasses.replace(section.train, steps=steps, log_every=steps // 2, eval_every=10 ** 9,
                                   checkpoint_every=10 ** 9, warmup_steps=0)
        if tcfg.threads > 0:
            torch.set_num_threads(tcfg.threads)
        conf = prior_model_config(cfg, level, train_set[0])
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            fit(build_prior(level, conf), loss_fn, train_set, tcfg, Path(tmp), conf, kind=f"{level}_prior")
            records = [json.loads(line) for line in (Path(tmp) / "log.jsonl").read_text().splitlines()]
        last = [r for r in records if r.get("split") == "train"][-1]  # the second half: warm
        batch = default_collate([train_set[i] for i in range(tcfg.batch_size)])
        bare = bare_step_seconds(build_prior(level, conf).train(), loss_fn, batch, max(4, steps // 4))
        tokens = tokens_per_step(level, conf, tcfg.batch_size, slices)
        rows.append({"level": level, "batch": tcfg.batch_size, "tokens_per_step": tokens,
                     "sec_per_step": last["sec_per_step"], "tokens_per_s": tokens / last["sec_per_step"],
                     "data_wait_share": last["data_wait"], "bare_sec_per_step": bare,
                     "bare_tokens_per_s": tokens / bare, "harness_over_bare": bare / last["sec_per_step"],
                     "num_workers": tcfg.num_workers, "threads": torch.get_num_threads()})
    return rows


def bench_paper(cfg, steps: int = 3, device: str = "cuda") -> list[dict]:
    """Paper-size priors on the GPU: the largest batch of a halving ladder that fits; step time, peak memory."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    shapes = latent_shapes(cfg)
    k = cfg.vqvae.model.codebook_size
    rows = []
    for level in ("top", "bottom"):
        paper_batch = (cfg.top_prior if level == "top" else cfg.bottom_prior).train.batch_size
        ladder = [b for b in (32, 16, 8, 4, 2, 1) if b <= paper_batch]  # per GPU: DDP splits the paper batch
        item = {name: torch.empty(shape) for name, shape in shapes.items()}
        conf = prior_model_config(cfg, level, item)
        with torch.device(dev):
            model = build_prior(level, conf).to(dev).train()  # .to: the masks are built on the CPU
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
        loss_fn = top_loss if level == "top" else bottom_loss_fn(cfg.bottom_prior.slices_per_clip)
        row = {"level": level, "parameters": sum(p.numel() for p in model.parameters()),
               "paper_batch": paper_batch}
        for b in ladder:
            batch = {name: torch.randint(0, k, (b, *shape), device=dev) for name, shape in shapes.items()}
            try:
                if cuda:
                    torch.cuda.reset_peak_memory_stats(dev)
                times = []
                for _ in range(steps):
                    sync()
                    t0 = time.perf_counter()
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                        loss, _ = loss_fn(model, batch)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sync()
                    times.append(time.perf_counter() - t0)
                sec = float(np.median(times[1:]))
                row.update(batch=b, sec_per_step=sec,
                           tokens_per_s=tokens_per_step(level, conf, b, cfg.bottom_prior.slices_per_clip) / sec,
                           peak_mem_gb=torch.cuda.max_memory_allocated(dev) / 2 ** 30 if cuda else None)
                break
            except torch.OutOfMemoryError:
                opt.zero_grad(set_to_none=True)
                del batch
                torch.cuda.empty_cache()
                row.setdefault("oom_batches", []).append(b)
        print(row, flush=True)
        rows.append(row)
        del model, opt
        if cuda:
            torch.cuda.empty_cache()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", type=Path, default=None)
    p.add_argument("--latents", type=Path, default=ROOT / "results" / "latents")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--paper", action="store_true", help="paper-size step on a GPU (config/config.yaml)")
    p.add_argument("--device", default="cuda", help="--paper only (cpu: a check of the script with a small config)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.paper:
        cfg = load_config(args.configfile or ROOT / "config" / "config.yaml")
        rows = bench_paper(cfg, device=args.device)
        out = args.out or ROOT / "benchmarks" / "results" / "priors_paper.json"
        name = torch.cuda.get_device_name(0) if args.device == "cuda" else args.device
        result = {"device": name, "rows": rows}
    else:
        cfg = load_config(args.configfile or ROOT / "config" / "demo.yaml")
        latents, source = args.latents, str(args.latents)
        with tempfile.TemporaryDirectory() as tmp:
            if not list_shards(latents / "train", "shard-*.h5"):
                latents, source = Path(tmp), "random codes in the config's latent shapes"
                random_latents(latents, latent_shapes(cfg), cfg.vqvae.model.codebook_size)
            rows = bench_harness(cfg, latents, args.steps)
        print(f"{'level':<7}{'batch':>6}{'tokens/s':>11}{'bare tok/s':>12}{'harness/bare':>14}{'data wait':>11}")
        for r in rows:
            print(f"{r['level']:<7}{r['batch']:>6}{r['tokens_per_s']:>11.0f}{r['bare_tokens_per_s']:>12.0f}"
                  f"{r['harness_over_bare']:>14.2f}{r['data_wait_share']:>11.1%}")
        out = args.out or ROOT / "benchmarks" / "results" / "priors.json"
        result = {"config": str(args.configfile or "config/demo.yaml"), "latents": source, "steps": args.steps,
                  "device": "cpu", "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
