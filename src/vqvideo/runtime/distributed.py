"""Small helpers around ``torch.distributed`` that are no-ops in a single process.

Under ``torchrun`` (or ``srun`` with the torchrun variables set) ``setup()`` joins the process group:
gloo on CPU, nccl on CUDA, one GPU per process chosen by ``LOCAL_RANK``. Everything else here works the
same with one process, so models and stages call these helpers unconditionally, e.g. an EMA codebook
all-reduces its counts with ``all_reduce_sum`` and a dead-code restart decided on rank 0 is ``broadcast``.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from vqvideo.runtime.device import choose_device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all processes, in place; returns ``t``."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Average ``t`` (floating point) over all processes, in place; returns ``t``."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(world_size())
    return t


def broadcast(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``t`` on every process with its value on rank ``src``, in place; returns ``t``."""
    if is_distributed():
        dist.broadcast(t, src=src)
    return t


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def any_flag(flag: bool, device: torch.device | None = None) -> bool:
    """True on every process when ``flag`` is true on at least one (e.g. a preemption signal)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_gather_object(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (small objects only)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def setup() -> torch.device:
    """Join the process group when launched with ``WORLD_SIZE > 1``; return this process's device.

    The device is ``cuda:LOCAL_RANK`` when CUDA is available, else (or with ``VQVIDEO_DEVICE=cpu``) the CPU.
    Idempotent: a second call returns the device without re-initialising.
    """
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and choose_device().type == "cuda":
        local_ws = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1))
        if local_ws > torch.cuda.device_count():
            raise RuntimeError(f"{local_ws} processes on this node but {torch.cuda.device_count()} GPU(s): "
                               "start one process per GPU (or set VQVIDEO_DEVICE=cpu)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if ws > 1 and not is_distributed():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30), **kwargs)
    return device


def teardown() -> None:
    if is_distributed():
        dist.destroy_process_group()
