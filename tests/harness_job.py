"""A tiny model trained by the harness, run in-process or as a subprocess by tests/train/test_harness.py.

    python tests/harness_job.py '{"out": "...", "train": {...TrainConfig...}, "model": {...}, "sleep": 0.0}'
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/harness_job.py '{...}'

Each rank writes its final parameters and buffers to ``out/params_rank{r}.pt``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from vqvideo.config import TrainConfig
from vqvideo.runtime import distributed as dist
from vqvideo.train.harness import fit

DIM = 8


class TinyNet(nn.Module):
    """MLP regressor with dropout (uses the global RNG) and a buffer updated in forward, like an EMA codebook."""

    def __init__(self, width: int = 16, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(DIM, width), nn.Tanh(), nn.Dropout(dropout), nn.Linear(width, 1))
        self.register_buffer("input_mean", torch.zeros(DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # statistics all-reduced by the model itself: DDP runs with broadcast_buffers=False
            with torch.no_grad():
                self.input_mean.mul_(0.9).add_(0.1 * dist.all_reduce_mean(x.mean(0)))
        return self.net(x).squeeze(-1)


def dataset(n: int = 96, seed: int = 0) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, DIM, generator=g)
    w = torch.randn(DIM, generator=g)
    return torch.utils.data.TensorDataset(x, torch.tanh(0.5 * x @ w))


def make_loss_fn(sleep: float = 0.0, crash_at: int | None = None):
    calls = 0

    def loss_fn(model, batch):
        nonlocal calls
        calls += 1
        if crash_at is not None and calls == crash_at:
            raise RuntimeError("simulated crash")
        if sleep:
            time.sleep(sleep)
        x, y = batch
        pred = model(x)
        loss = nn.functional.mse_loss(pred, y)
        return loss, {"mae": (pred - y).abs().mean().detach()}

    return loss_fn


def run(out: str | Path, train: dict, model: dict | None = None, sleep: float = 0.0,
        crash_at: int | None = None, n: int = 96, evaluate=None) -> nn.Module:
    model = model or {}
    torch.manual_seed(0)  # the same initial weights in every process (DDP also broadcasts rank 0's)
    net = TinyNet(**model)
    return fit(net, make_loss_fn(sleep, crash_at), dataset(n), TrainConfig(**train), Path(out),
               model_config=model, evaluate=evaluate, seed=0, kind="tiny")


def main() -> None:
    args = json.loads(sys.argv[1])
    net = run(**args)
    torch.save(net.state_dict(), Path(args["out"]) / f"params_rank{dist.rank()}.pt")
    dist.teardown()


if __name__ == "__main__":
    main()
