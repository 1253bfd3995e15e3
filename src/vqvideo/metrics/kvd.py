"""Kernel Video Distance (Unterthiner et al. 2018): the unbiased MMD² between two sets of I3D logits with the
polynomial kernel k(x, y) = (xᵀy / d + 1)³ (as KID, Bińkowski et al. 2018, does for Inception features).

Unlike FVD, the unbiased estimate has no bias that depends on the number of videos: its expectation is the
population MMD² at any N >= 2, so values at small N (the demo's few dozen videos) are noisy but comparable
across N, and a set drawn from the reference distribution scores ~0 (it can be slightly negative).
"""

from __future__ import annotations

import numpy as np

from vqvideo.metrics.fvd import FVDInputError, check_features


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """k(a_i, b_j) = (a_i · b_j / d + 1)³ for feature sets ``[N, d]`` and ``[M, d]`` -> ``[N, M]`` (float64)."""
    d = a.shape[1]
    return (a @ b.T / d + 1.0) ** 3


def kernel_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """KVD between feature sets ``[N_a, D]`` and ``[N_b, D]``: unbiased MMD² (float64).

    MMD²_u = Σ_{i≠j} k(a_i, a_j) / (m(m-1)) + Σ_{i≠j} k(b_i, b_j) / (n(n-1)) - 2 Σ_{i,j} k(a_i, b_j) / (mn).
    """
    a = check_features(feats_a, "first set")
    b = check_features(feats_b, "second set")
    if a.shape[1] != b.shape[1]:
        raise FVDInputError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    m, n = len(a), len(b)
    k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2.0 * k_ab.mean())
