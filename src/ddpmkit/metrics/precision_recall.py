"""Improved precision and recall (Kynkäänniemi et al. 2019).

Each set's manifold is the union of balls around its points, each ball's radius being the distance to the point's
k-th nearest neighbour within the same set (k = 3 in the paper). Precision is the fraction of generated samples inside
the real manifold; recall is the fraction of real samples inside the generated manifold.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .frechet import _as_features


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float


def knn_radii(x: torch.Tensor, k: int = 3, batch_size: int = 1024) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row: [N]. A point is its own 0-th neighbour."""
    if not 1 <= k < len(x):
        raise ValueError(f"k={k} nearest neighbours need more than k samples (got {len(x)})")
    return torch.cat([torch.cdist(chunk, x).kthvalue(k + 1, dim=1).values for chunk in x.split(batch_size)])


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int) -> float:
    """Fraction of points within distance radii[j] of some centre j."""
    inside = [(torch.cdist(chunk, centres) <= radii).any(dim=1) for chunk in points.split(batch_size)]
    return float(torch.cat(inside).double().mean())


def precision_recall(real, fake, k: int = 3, batch_size: int = 1024) -> PrecisionRecall:
    """Improved precision/recall of ``fake`` against ``real`` feature sets ([N, D], [M, D])."""
    real, fake = _as_features(real), _as_features(fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature widths differ: {real.shape[1]} vs {fake.shape[1]}")
    precision = _coverage(fake, real, knn_radii(real, k, batch_size), batch_size)
    recall = _coverage(real, fake, knn_radii(fake, k, batch_size), batch_size)
    return PrecisionRecall(precision, recall)
