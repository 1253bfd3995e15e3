"""KVD: the unbiased MMD² with the cubic polynomial kernel, against an explicit hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from vqvideo.metrics.fvd import FVDInputError
from vqvideo.metrics.kvd import kernel_distance


def _by_hand(a: np.ndarray, b: np.ndarray) -> float:
    """The definition, one pair at a time: k(x, y) = (x.y / d + 1)^3, self-pairs left out of the within-sums."""
    d = a.shape[1]

    def k(x, y):
        return (sum(float(xi) * float(yi) for xi, yi in zip(x, y)) / d + 1.0) ** 3

    m, n = len(a), len(b)
    xx = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2.0 * xy


def test_kvd_equals_the_hand_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 3.0, (7, 5))
    b = rng.normal(1.0, 2.0, (4, 5))
    assert kernel_distance(a, b) == pytest.approx(_by_hand(a, b), rel=1e-12)
    assert kernel_distance(b, a) == pytest.approx(kernel_distance(a, b), rel=1e-12)  # symmetric


def test_kvd_is_unbiased_not_zero_on_identical_sets():
    # the same set twice: the within-sums leave out the diagonal, the cross-sum keeps it; as the kernel is
    # positive semi-definite (k_ij <= (k_ii + k_jj) / 2) the estimate is then <= 0, not FVD's exact 0
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 4))
    assert kernel_distance(a, a) == pytest.approx(_by_hand(a, a), rel=1e-12)
    assert kernel_distance(a, a) < 0


def test_kvd_near_zero_for_one_distribution_and_large_for_two():
    rng = np.random.default_rng(2)
    same = [kernel_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8))) for _ in range(5)]
    apart = kernel_distance(rng.normal(size=(200, 8)), rng.normal(0.5, 1.0, size=(200, 8)))
    assert max(abs(v) for v in same) < 0.2 * apart


def test_kvd_refuses_bad_features():
    with pytest.raises(FVDInputError, match="at least 2"):
        kernel_distance(np.zeros((1, 3)), np.zeros((3, 3)))
    with pytest.raises(FVDInputError, match="sizes differ"):
        kernel_distance(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(FVDInputError, match="NaN"):
        kernel_distance(np.full((3, 3), np.nan), np.zeros((3, 3)))
