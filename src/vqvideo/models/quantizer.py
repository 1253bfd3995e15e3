"""EMA vector quantizer: one codebook of ``K`` codes of dimension ``D`` (paper section 2, equations 1-3).

Forward maps encoder outputs ``z_e`` to their nearest code (eq. 1), passes gradients straight through
(``z_q = z_e + sg(e - z_e)``), returns the commitment loss ``beta * ||z_e - sg(e)||^2`` and, in training,
updates the codebook by exponential moving averages instead of a codebook loss (eq. 3):

    N_i <- gamma * N_i + (1 - gamma) * n_i          (n_i: vectors of this batch mapped to code i)
    m_i <- gamma * m_i + (1 - gamma) * sum_j z_j    (sum over those vectors)
    e_i <- m_i / N~_i,   N~_i = (N_i + eps) / (sum_k N_k + K * eps) * sum_k N_k

``N~`` is the Laplace-smoothed count of the VQ-VAE-2 / Sonnet implementations: it only keeps ``e_i``
finite for codes that are never chosen; the stored ``N`` stays the plain EMA.

Data parallel: ``n_i`` and ``sum_j z_j`` are all-reduced (summed) over the replicas before the update, so
every replica applies the same update to the same codebook. Dead-code restart (optional): codes whose EMA
count ``N_i`` falls below ``restart_threshold`` are re-seeded from random encoder outputs of this batch;
the dead set is the same everywhere (it depends on all-reduced counts only) and the replacement vectors
are drawn on rank 0 and broadcast, so the replicas never hold different codebooks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vqvideo.runtime.distributed import all_reduce_sum, broadcast, world_size


def code_usage(counts: torch.Tensor) -> dict[str, float]:
    """Usage of a codebook from per-code counts ``[K]``: fraction of codes used at least once, perplexity.

    Perplexity ``exp(H(p))`` of the code distribution: ``K`` when all codes are equally used, 1 when one is.
    """
    counts = counts.double()
    total = counts.sum().clamp_min(1e-12)
    p = counts / total
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return {"usage": float((counts > 0).double().mean()), "perplexity": float(torch.exp(entropy))}


class EMAQuantizer(nn.Module):
    """Nearest-neighbour quantizer with an EMA-updated codebook.

    Args:
        num_codes: K, codes in the codebook.
        dim: D, dimension of a code (channels of the encoder output).
        beta: commitment loss weight (paper Table 3: 0.25).
        decay: gamma of eq. 3.
        epsilon: Laplace smoothing of the counts.
        restart_threshold: re-seed codes whose EMA count is below this (0 disables restarts).
        init: "random" (unit Gaussian codes) or "data" (the first training batch's encoder outputs).
    """

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, decay: float = 0.99, epsilon: float = 1e-5,
                 restart_threshold: float = 0.0, init: str = "random"):
        super().__init__()
        if init not in ("random", "data"):
            raise ValueError(f"init must be 'random' or 'data', not {init!r}")
        self.num_codes, self.dim = num_codes, dim
        self.beta, self.decay, self.epsilon = beta, decay, epsilon
        self.restart_threshold = restart_threshold
        codebook = torch.randn(num_codes, dim)
        self.register_buffer("codebook", codebook)              # e  [K, D]
        self.register_buffer("ema_count", torch.ones(num_codes))  # N  [K]; 1 so that e = m / N at the start
        self.register_buffer("ema_sum", codebook.clone())         # m  [K, D]
        self.register_buffer("initialized", torch.tensor(init == "random"))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))  # codes re-seeded so far

    # ------------------------------------------------------------------------------------------ lookup
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index ``[N]`` of the nearest code for each row of ``flat`` ``[N, D]`` (squared Euclidean)."""
        e = self.codebook
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]
        return dist.argmin(1)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, *S]`` (long) -> code vectors ``[B, D, *S]``."""
        return torch.movedim(F.embedding(codes, self.codebook), -1, 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
        """Quantize ``z`` ``[B, D, *S]``.

        Returns ``(z_q [B, D, *S]`` with straight-through gradients, ``codes [B, *S]`` long,
        ``commitment loss`` scalar, ``metrics`` {usage, perplexity} of this batch (over all replicas)).
        """
        with torch.autocast(z.device.type, enabled=False):  # distances and EMA statistics in float32
            z = z.float()
            flat = rearrange(z, "b d ... -> (b ...) d")
            if self.training and not bool(self.initialized):
                self._init_from(flat)
            codes_flat = self.nearest(flat.detach())
            onehot = F.one_hot(codes_flat, self.num_codes).to(flat.dtype)   # [N, K]
            counts = onehot.sum(0)
            codes = codes_flat.view(z.shape[0], *z.shape[2:])
            q = self.embed(codes)  # the codes chosen, before this batch's update (as Sonnet and VQ-VAE-2)
            if self.training:
                counts = self._update(flat.detach(), onehot, counts)
            commitment = self.beta * F.mse_loss(z, q.detach())
            z_q = z + (q - z).detach()  # straight-through: the decoder's gradient is copied to z_e
        return z_q, codes, commitment, code_usage(counts.detach())

    # ------------------------------------------------------------------------------------------ training
    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        """Codebook from random encoder outputs (rank 0's, broadcast), counts 1."""
        new = self._random_rows(flat, self.num_codes)
        self.codebook.copy_(new)
        self.ema_sum.copy_(new)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _random_rows(self, flat: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` rows drawn (with replacement when needed) from rank 0's ``flat``, identical on every rank."""
        idx = torch.randint(0, flat.shape[0], (n,), device=flat.device) if flat.shape[0] < n \
            else torch.randperm(flat.shape[0], device=flat.device)[:n]
        rows = flat[idx].contiguous()
        return broadcast(rows, src=0) if world_size() > 1 else rows

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, onehot: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """EMA update of eq. 3 with statistics summed over replicas; returns the summed counts ``[K]``."""
        sums = onehot.t() @ flat                                   # [K, D]
        stats = torch.cat([counts[:, None], sums], 1)
        all_reduce_sum(stats)                                      # one collective for both
        counts, sums = stats[:, 0], stats[:, 1:]
        g = self.decay
        self.ema_count.mul_(g).add_(counts, alpha=1 - g)
        self.ema_sum.mul_(g).add_(sums, alpha=1 - g)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.epsilon) / (n + self.num_codes * self.epsilon) * n
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        if self.restart_threshold > 0:
            self._restart(flat)
        return counts

    @torch.no_grad()
    def _restart(self, flat: torch.Tensor) -> None:
        """Re-seed codes whose EMA count fell below the threshold with random encoder outputs.

        The dead mask is computed from all-reduced counts (the same on every rank); the replacements come
        from rank 0 and are broadcast. A restarted code starts with count 1 (N_i = 1, m_i = e_i); with a
        threshold >= 1 a code that still catches no vector is simply re-seeded again at the next step.
        """
        dead = self.ema_count < self.restart_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        new = self._random_rows(flat, self.num_codes)
        # a little noise so that two codes seeded from one vector can separate
        new = new + 0.01 * new.std() * broadcast(torch.randn_like(new), src=0)
        self.codebook[dead] = new[dead]
        self.ema_sum[dead] = new[dead]
        self.ema_count[dead] = 1.0
        self.restarts.add_(n_dead)
