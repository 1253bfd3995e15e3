"""EMA quantizer: eq. 3 by hand, straight-through gradients, dead-code restarts, DDP-identical codebooks."""

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from vqvideo.models.quantizer import EMAQuantizer, code_usage


def _toy():
    q = EMAQuantizer(num_codes=3, dim=2, beta=0.25, decay=0.9, epsilon=0.1)
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]))
    q.ema_sum.copy_(q.codebook)
    q.ema_count.fill_(1.0)
    return q


def test_ema_update_matches_hand_computation():
    q = _toy().train()
    # 4 vectors as [B=1, D=2, 4]: three near code 1, one near code 0, none near code 2
    z = torch.tensor([[0.1, 0.0], [0.9, 1.2], [1.1, 0.8], [1.0, 1.3]]).t()[None]
    _, codes, commit, metrics = q(z)
    assert codes.tolist() == [[0, 1, 1, 1]]

    g, eps, K = 0.9, 0.1, 3
    n = torch.tensor([1.0, 3.0, 0.0])
    sums = torch.tensor([[0.1, 0.0], [3.0, 3.3], [0.0, 0.0]])
    N = g * torch.ones(3) + (1 - g) * n                       # [0.95, 1.15, 0.9]
    m = g * torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]) + (1 - g) * sums
    total = N.sum()
    N_smooth = (N + eps) / (total + K * eps) * total
    expected = m / N_smooth[:, None]
    torch.testing.assert_close(q.ema_count, N)
    torch.testing.assert_close(q.ema_sum, m)
    torch.testing.assert_close(q.codebook, expected)
    # the commitment loss uses the codes from before the update
    old = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    torch.testing.assert_close(commit, 0.25 * (z[0].t() - old).pow(2).mean())
    assert metrics["usage"] == pytest.approx(2 / 3)
    p = torch.tensor([0.25, 0.75])
    assert metrics["perplexity"] == pytest.approx(math.exp(-(p * p.log()).sum().item()))


def test_eval_mode_leaves_codebook_alone():
    q = _toy().eval()
    before = q.codebook.clone()
    q(torch.randn(2, 2, 5))
    torch.testing.assert_close(q.codebook, before)


def test_straight_through_gradient_is_copied_to_input():
    q = _toy().train()
    z = torch.randn(2, 2, 3, requires_grad=True)
    z_q, _, _, _ = q(z)
    w = torch.randn_like(z_q)
    (z_q * w).sum().backward()
    torch.testing.assert_close(z.grad, w)  # d(z_q)/dz = identity


def test_restart_revives_dead_codes():
    torch.manual_seed(0)
    q = EMAQuantizer(num_codes=8, dim=4, decay=0.5, restart_threshold=0.75).train()
    q.codebook.mul_(100).add_(1000)  # every code far from the data: all but one are dead after one step
    q.ema_sum.copy_(q.codebook)
    z = torch.randn(4, 4, 16)
    q(z)
    assert int(q.restarts) >= 7
    flat = z.permute(0, 2, 1).reshape(-1, 4)
    # the restarted codes are (near) encoder outputs, so the next batch uses several of them
    nearest = torch.cdist(q.codebook, flat).min(1).values
    assert (nearest < 0.1).sum() >= 7
    _, _, _, metrics = q(z)
    assert metrics["usage"] >= 0.75


def test_code_usage():
    u = code_usage(torch.tensor([5.0, 5.0, 0.0, 0.0]))
    assert u["usage"] == 0.5 and u["perplexity"] == pytest.approx(2.0)


def test_data_init_takes_encoder_outputs():
    torch.manual_seed(0)
    q = EMAQuantizer(num_codes=4, dim=3, init="data").train()
    z = torch.randn(1, 3, 64) * 10
    q(z)
    flat = z[0].t()
    assert torch.cdist(q.codebook, flat).min(1).values.max() < 5  # near data, not unit Gaussian noise


# ------------------------------------------------------------------------------------------- DDP (gloo)
def _replica(rank, world, port, result):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    q = EMAQuantizer(num_codes=16, dim=4, decay=0.8, restart_threshold=1.0).train()
    gen = torch.Generator().manual_seed(100 + rank)  # every replica sees different data
    for _ in range(5):
        q(torch.randn(2, 4, 8, generator=gen) * (1 + rank))
    books = [torch.zeros_like(q.codebook) for _ in range(world)]
    dist.all_gather(books, q.codebook)
    counts = [torch.zeros_like(q.ema_count) for _ in range(world)]
    dist.all_gather(counts, q.ema_count)
    if rank == 0:
        result.put((torch.equal(books[0], books[1]), torch.equal(counts[0], counts[1]), int(q.restarts)))
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_replicas_keep_identical_codebooks_with_restarts():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    result = ctx.Queue()
    procs = [ctx.Process(target=_replica, args=(r, 2, port, result)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    same_books, same_counts, restarts = result.get(timeout=5)
    assert restarts > 0 and same_books and same_counts
