"""Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, "FID").

    d² = ||μ₁ - μ₂||² + Tr(Σ₁ + Σ₂ - 2 (Σ₁ Σ₂)^{1/2})

Computed in float64. Tr((Σ₁Σ₂)^{1/2}) is the sum of square roots of the eigenvalues of Σ₁Σ₂, which equal those of the
symmetric PSD matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2} (AB and BA share eigenvalues), so two symmetric eigendecompositions suffice
and singular covariances (fewer samples than dimensions, dead features) stay well-defined.
"""
from __future__ import annotations

import torch


def _as_features(x) -> torch.Tensor:
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D [N, D] tensor, got shape {tuple(x.shape)}")
    bad = int((~torch.isfinite(x)).any(dim=1).sum())
    if bad:
        raise ValueError(f"{bad} of {x.shape[0]} feature vectors contain NaN or inf: the images behind them are "
                         f"broken (a sampler that diverged?); check them with torch.isfinite before measuring")
    return x


def gaussian_stats(features) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ [D], Σ [D, D]) in float64; Σ is the unbiased sample covariance (divides by N - 1)."""
    x = _as_features(features)
    if x.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors, got {x.shape[0]}")
    mu = x.mean(dim=0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def _psd_sqrt(s: torch.Tensor) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(s)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(μ₁, Σ₁) and N(μ₂, Σ₂)."""
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"mismatched Gaussian shapes: μ {tuple(mu1.shape)} vs {tuple(mu2.shape)}, "
                         f"Σ {tuple(s1.shape)} vs {tuple(s2.shape)}")
    if not all(bool(torch.isfinite(v).all()) for v in (mu1, mu2, s1, s2)):
        raise ValueError("Gaussian statistics contain NaN or inf: they were fitted to broken features")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    r = _psd_sqrt(s1)
    tr_covmean = torch.linalg.eigvalsh(r @ s2 @ r).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + s1.trace() + s2.trace() - 2 * tr_covmean)


def fid_from_features(a, b) -> float:
    """FID between two feature sets [N, D] and [M, D] (any feature network).

    With fewer samples than dimensions the same value comes from the small [N, M] cross matrix: for centred A, B,
    Σ₁Σ₂ = AᵀA BᵀB / ((N-1)(M-1)) has the nonzero eigenvalues of (ABᵀ)(ABᵀ)ᵀ / ((N-1)(M-1)), so
    Tr((Σ₁Σ₂)^{1/2}) = ||ABᵀ||_* / √((N-1)(M-1)) (nuclear norm).
    """
    a, b = _as_features(a), _as_features(b)
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    if b.shape[1] != d:
        raise ValueError(f"mismatched feature widths: {d} vs {b.shape[1]}")
    if min(n, m) >= d or min(n, m) < 2:
        return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    mu1, mu2 = a.mean(dim=0), b.mean(dim=0)
    ca, cb = a - mu1, b - mu2
    tr_covmean = torch.linalg.svdvals(ca @ cb.T).sum() / ((n - 1) * (m - 1)) ** 0.5
    diff = mu1 - mu2
    return float(diff @ diff + (ca * ca).sum() / (n - 1) + (cb * cb).sum() / (m - 1) - 2 * tr_covmean)
