"""Naive against incremental sampling: seconds per token, the speed-up, and whether the tokens are identical.

    python benchmarks/sampling.py                       # CPU: demo models + paper-shape priors at reduced width
    python benchmarks/sampling.py --device cuda --width paper --batch 32 --out benchmarks/results/sampling_gpu.json

For each PixelCNN (the demo config's top and bottom priors, and the paper's Table 4 top prior [3, 32, 32] with
40 layers / 8 attention layers / filter 3 (and the past stream if config/config.yaml sets it) and bottom prior
[64, 64] with 20 layers / 4 attention layers / filter 5, at reduced width: hidden 128, residual 256,
conditioning features 128 -- or at the paper's widths with ``--width paper``), the grid is filled with random codes up to its last 64 positions and the last 64 tokens
are sampled, where the caches are longest (per-token times are medians, robust to a shared machine; the
means are in the JSON too):
- incremental: the caches are filled by one teacher-forced pass over the prefix, then the 64 tokens are timed;
- naive: one full forward pass over the grid per token. Every naive step costs the same (the whole grid),
  so it is timed on the first ``--naive-tokens`` of those 64 (all 64 for the small demo models): a whole grid
  at paper shape takes hours on a CPU. Comparing per-token cost on the same tokens is the fair measure.
Both draw from the same noise (the naive sampler's Gumbel-max rule); ``identical`` says whether every token the
naive sampler drew equals the incremental sampler's. Also reported: one teacher-forced forward pass over the
grid (the least of that and the naive steps, each a forward pass: the machine may be busy), and the
incremental time for a whole grid (per-token time x positions, an upper estimate: earlier tokens
have shorter caches) divided by it -- how close the incremental sampler gets to the cost floor of the
parallel forward pass. Seconds per video: top grid + bottom timesteps ``first..Tb-1``.
Writes benchmarks/results/sampling.json: {"top": {"naive_s", "incremental_s", "speedup", ...},
"bottom": {...}, "demo_top": {...}, "demo_bottom": {...}, "identical": bool}.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vqvideo.config import load_config  # noqa: E402
from vqvideo.models.pixelcnn import PixelCNN  # noqa: E402
from vqvideo.sampling import naive  # noqa: E402
from vqvideo.sampling.incremental import IncrementalPixelCNN  # noqa: E402

LAST = 64  # tokens timed at the end of each grid

# Table 4; widths: "reduced" (the CPU benchmark) or "paper"
PAPER = {
    "top": dict(shape=(3, 32, 32), layers=40, attention_layers=8, heads=8, filter_size=3, predicted_steps=1),
    "bottom": dict(shape=(64, 64), layers=20, attention_layers=4, heads=8, filter_size=5, predicted_steps=6),
}
WIDTHS = {"reduced": dict(hidden=128, residual=256, top_cond=128, bottom_cond=128),
          "paper": dict(hidden=512, residual=1024, top_cond=512, bottom_cond=1024)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def paper_net(level: str, width: str, codebook_size: int = 512) -> tuple[PixelCNN, int]:
    p, w = PAPER[level], WIDTHS[width]
    cond = w[f"{level}_cond"]
    # the top prior's past stream as the paper config sets it
    past = level == "top" and load_config(ROOT / "config" / "config.yaml").top_prior.model.past_stream
    net = PixelCNN(codebook_size, p["shape"], w["hidden"], w["residual"], p["layers"], p["attention_layers"],
                   p["heads"], p["filter_size"], dropout=0.0, cond_channels=cond, past_stream=past)
    return net.eval(), p["predicted_steps"]


def demo_net(level: str, configfile: Path) -> tuple[PixelCNN, int]:
    from vqvideo.summary import vqvae_section
    from vqvideo.train.priors import build_prior

    cfg = load_config(configfile)
    shapes = vqvae_section(cfg)
    top, bottom = shapes["latent_shapes"]["top"], shapes["latent_shapes"]["bottom"]
    ct, cb = shapes["cond_latent_shapes"]["top"], shapes["cond_latent_shapes"]["bottom"]
    section = cfg.top_prior if level == "top" else cfg.bottom_prior
    import dataclasses

    conf = {"codebook_size": int(cfg.vqvae.model.codebook_size), **dataclasses.asdict(section.model)}
    if level == "top":
        conf["shape"] = [top[0] - ct[0], top[1], top[2]]
        steps = 1
    else:
        conf.update(shape=bottom[1:], timesteps=bottom[0], first=cb[0])
        steps = bottom[0] - cb[0]
    return build_prior(level, conf).pixelcnn.eval(), steps


@torch.no_grad()
def measure(net: PixelCNN, batch: int, device, naive_tokens: int, seed: int = 0) -> dict:
    """Time the last LAST tokens of one grid with both samplers (module docstring)."""
    torch.manual_seed(seed)
    net.to(device)
    shape, k = net.shape, net.codebook_size
    n = math.prod(shape)
    last = min(LAST, n)
    start = n - last
    cond_channels = net.layers[0].h_cond.in_channels if net.layers[0].h_cond is not None else 0
    cond = torch.randn(batch, cond_channels, *shape, device=device) if cond_channels else None
    prefix = torch.randint(0, k, (batch, *shape), device=device)
    noise = torch.rand(batch, *shape, k, device=device)
    positions = [tuple(divmod_all(f, shape)) for f in range(n)]

    # one teacher-forced forward (also the warm-up)
    net(prefix, cond)
    _sync(device)
    t = time.perf_counter()
    net(prefix, cond)
    _sync(device)
    forward_s = time.perf_counter() - t

    # incremental: prefill (untimed), then the last tokens
    sampler = IncrementalPixelCNN(net)
    marks = {}

    def on_token(done):
        _sync(device)
        marks[done] = time.perf_counter()

    t0 = time.perf_counter()
    codes = sampler.sample(cond, noise, 1.0, prefix=prefix, start=start, on_token=on_token)
    incremental_steps = [marks[i + 1] - marks[i] for i in range(start, n)]
    incremental_mean_s = (marks[n] - marks[start]) / last
    prefill_s = marks[start] - t0

    # naive: a full forward per token, on the same grid and the same noise
    x = codes.clone().flatten(1)
    x[:, start:] = 0
    x = x.view(codes.shape)
    timed = min(naive_tokens, last)
    identical = True
    steps = []
    for f in range(start, start + timed):
        pos = positions[f]
        _sync(device)
        t = time.perf_counter()
        logits = net(x, cond)[(slice(None), slice(None)) + pos]
        token = naive.draw(logits, noise[(slice(None),) + pos], 1.0)
        x[(slice(None),) + pos] = token
        _sync(device)
        steps.append(time.perf_counter() - t)
        identical &= bool(torch.equal(token, codes[(slice(None),) + pos]))
    naive_s, incremental_s = statistics.median(steps), statistics.median(incremental_steps)
    forward_s = min([forward_s] + steps)  # a naive step is a forward pass (+ one draw): the least of them
    return {"shape": list(shape), "batch": batch, "tokens_timed": {"naive": timed, "incremental": last},
            "naive_s": naive_s, "incremental_s": incremental_s, "speedup": naive_s / incremental_s,
            "naive_mean_s": sum(steps) / timed, "incremental_mean_s": incremental_mean_s,
            "forward_s": forward_s, "prefill_s": prefill_s,
            "grid_incremental_over_forward": incremental_s * n / forward_s,
            "naive_tokens_per_s": batch / naive_s, "incremental_tokens_per_s": batch / incremental_s,
            "identical": identical, "grid_tokens": n}


def divmod_all(flat: int, shape) -> list[int]:
    out = []
    for s in reversed(shape):
        flat, r = divmod(flat, s)
        out.append(r)
    return out[::-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", type=Path, default=ROOT / "config" / "demo.yaml", help="demo models' config")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1, help="grids sampled together")
    ap.add_argument("--width", choices=sorted(WIDTHS), default="reduced", help="paper-shape priors' widths")
    ap.add_argument("--naive-tokens", type=int, default=2, help="naive steps timed at paper shape (each = a forward)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads for both samplers' big operations")
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sampling.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":  # float32 in both samplers (as vqvideo sample does): no TF32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    results = {}
    runs = [] if args.skip_demo else [("demo_top", lambda: demo_net("top", args.configfile), LAST),
                                      ("demo_bottom", lambda: demo_net("bottom", args.configfile), LAST)]
    runs += [("top", lambda: paper_net("top", args.width), args.naive_tokens),
             ("bottom", lambda: paper_net("bottom", args.width), args.naive_tokens)]
    steps = {}
    for name, build, naive_tokens in runs:
        t = time.perf_counter()
        net, steps[name] = build()
        results[name] = measure(net, args.batch, device, naive_tokens)
        results[name]["wall_s"] = time.perf_counter() - t
        del net
        print(f"{name}: done in {results[name]['wall_s']:.0f} s", flush=True)
    # seconds per video: the top grid plus the bottom's predicted timesteps (per-token time x tokens)
    for prefix in ("demo_", ""):
        top, bottom = results.get(prefix + "top"), results.get(prefix + "bottom")
        if top and bottom:
            for kind in ("naive", "incremental"):
                per_video = (top[f"{kind}_s"] * top["grid_tokens"] +
                             bottom[f"{kind}_s"] * bottom["grid_tokens"] * steps[prefix + "bottom"]) / args.batch
                results.setdefault(prefix + "video", {})[f"{kind}_s_per_video"] = per_video
    results["identical"] = all(r["identical"] for k, r in results.items() if isinstance(r, dict) and "identical" in r)
    results["setup"] = {"device": str(device), "threads": args.threads, "batch": args.batch, "width": args.width,
                        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
                        "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
                        "note": "median seconds per token over the last 64 tokens of each grid (medians: the machine "
                                "may be shared); a naive step is one full forward pass whatever the position, so "
                                "it is timed on fewer tokens"}

    print(f"\n{'model':12s} {'grid':>12s} {'naive s/tok':>12s} {'incr s/tok':>11s} {'speed-up':>9s} "
          f"{'forward s':>10s} {'grid/fwd':>9s} {'same':>5s}")
    for name in ("demo_top", "demo_bottom", "top", "bottom"):
        if name in results:
            r = results[name]
            print(f"{name:12s} {'x'.join(map(str, r['shape'])):>12s} {r['naive_s']:12.4f} {r['incremental_s']:11.4f} "
                  f"{r['speedup']:8.1f}x {r['forward_s']:10.3f} {r['grid_incremental_over_forward']:9.1f} "
                  f"{str(r['identical']):>5s}")
    for prefix in ("demo_", ""):
        if prefix + "video" in results:
            v = results[prefix + "video"]
            print(f"{(prefix or 'paper-shape ') + 'video'}: naive {v['naive_s_per_video']:.0f} s, "
                  f"incremental {v['incremental_s_per_video']:.1f} s per video (batch {args.batch})")
    print(f"identical tokens: {results['identical']}   ({results['setup']['note']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if results["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
