"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs").

KID is the unbiased estimate of the squared MMD with the cubic polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over
random subsets of both feature sets (each drawn without replacement); the spread over subsets is reported beside it.

    MMD²_u = 1/(m(m-1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n-1)) Σ_{i≠j} k(y_i, y_j) - 2/(mn) Σ_{i,j} k(x_i, y_j)
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .frechet import _as_features


class KID(NamedTuple):
    mean: float
    std: float            # population std of the per-subset estimates (as torch-fidelity and torchmetrics report)


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    """k(x, y) = (x·y / d + coef)^degree for all pairs: [N, D] × [M, D] -> [N, M]."""
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD² between two feature sets under the polynomial kernel (the diagonals k(x_i, x_i) are left out)."""
    x, y = _as_features(x), _as_features(y)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD² needs at least 2 samples per set, got {m} and {n}")
    kxx = polynomial_kernel(x, x, degree, coef)
    kyy = polynomial_kernel(y, y, degree, coef)
    kxy = polynomial_kernel(x, y, degree, coef)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * kxy.mean())


def kid_from_features(a, b, subsets: int = 100, subset_size: int = 1000, degree: int = 3, coef: float = 1.0,
                      generator: torch.Generator | None = None) -> KID:
    """KID between feature sets [N, D] and [M, D]: mean and std of MMD²_u over ``subsets`` random subset pairs.

    Defaults follow Bińkowski et al. (100 subsets of 1,000). ``subset_size`` must not exceed either set's size.
    """
    a, b = _as_features(a), _as_features(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature widths differ: {a.shape[1]} vs {b.shape[1]}")
    if not 2 <= subset_size <= min(len(a), len(b)):
        raise ValueError(f"KID subset_size={subset_size} must lie in [2, {min(len(a), len(b))}] "
                         f"(the smaller set has {min(len(a), len(b))} samples); pass a smaller subset_size")
    if subsets < 1:
        raise ValueError(f"KID needs at least one subset, got subsets={subsets}")
    if subset_size == len(a) == len(b):   # every subset pair is the full pair of sets: one estimate, no spread
        return KID(mmd2_unbiased(a, b, degree, coef), 0.0)
    estimates = torch.empty(subsets, dtype=torch.float64)
    for i in range(subsets):
        ia = torch.randperm(len(a), generator=generator)[:subset_size]
        ib = torch.randperm(len(b), generator=generator)[:subset_size]
        estimates[i] = mmd2_unbiased(a[ia], b[ib], degree, coef)
    return KID(float(estimates.mean()), float(estimates.std(correction=0)))
