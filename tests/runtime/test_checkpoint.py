"""Atomic checkpoints: a write that dies half way (exception or SIGKILL) leaves the previous one loadable."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from vqvideo.runtime.checkpoint import load_checkpoint, load_model, rng_state, save_checkpoint, set_rng_state


def good_state(step: int) -> dict:
    torch.manual_seed(step)
    model = torch.nn.Linear(4, 3)
    return {"kind": "test", "model": model.state_dict(), "model_config": {"i": 4, "o": 3}, "step": step,
            "train_config": {"betas": (0.9, 0.99)}, "rng": [rng_state()], "data": {"position": 5}}


def test_roundtrip_and_load_model(tmp_path):
    state = good_state(1)
    save_checkpoint(tmp_path / "sub" / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "sub" / "c.pt")
    assert loaded["step"] == 1 and loaded["train_config"] == {"betas": (0.9, 0.99)}
    assert torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    model, ckpt = load_model(tmp_path / "sub" / "c.pt", lambda c: torch.nn.Linear(c["i"], c["o"]))
    assert torch.equal(model.weight, state["model"]["weight"]) and ckpt["model_config"] == {"i": 4, "o": 3}
    assert os.listdir(tmp_path / "sub") == ["c.pt"]  # no temporary file left


class Bomb:
    """Pickling this raises, after the tensors before it were already written."""

    def __reduce__(self):
        raise RuntimeError("disk full (simulated)")


def test_write_that_raises_half_way_keeps_previous(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, good_state(1))
    with pytest.raises(RuntimeError, match="simulated"):
        save_checkpoint(path, {"model": {"w": torch.randn(256, 1024)}, "later": Bomb()})
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["c.pt"]


WRITER = textwrap.dedent("""
    import sys, torch
    from vqvideo.runtime.checkpoint import save_checkpoint
    big = {"model": {"w": torch.randn(8 * 2**20)}, "step": 2}  # 32 MiB
    while True:
        save_checkpoint(sys.argv[1], big)
""")


def writing(folder) -> bool:
    """A temporary file with some bytes in it exists (it may be renamed away while we look)."""
    for p in folder.iterdir():
        try:
            if p.name.endswith(".tmp") and p.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
    return False


@pytest.mark.slow
def test_sigkill_during_write_keeps_previous(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, good_state(1))
    for _attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        deadline = time.time() + 60
        while not writing(tmp_path):
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
            break  # killed while a temporary file was being written
    else:
        pytest.fail("never caught the writer mid-write")
    ckpt = load_checkpoint(path)  # the previous checkpoint, or a complete newer one: never a torn file
    assert ckpt["step"] in (1, 2)
    save_checkpoint(path, good_state(3))  # the next save removes the dead writer's temporary file
    assert os.listdir(tmp_path) == ["c.pt"] and load_checkpoint(path)["step"] == 3


class Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        torch.save({"model": Payload()}, fh, pickle_module=pickle)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_rng_state_restores_every_stream(tmp_path):
    state = rng_state()
    save_checkpoint(tmp_path / "r.pt", {"rng": [state]})
    first = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random())
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"][0])
    again = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2:] == again[2:]
