"""Closed-form helpers for tests: the exact denoiser of Gaussian data.

For x_0 ~ N(μ, s² I), x_t = √ᾱ x_0 + √(1-ᾱ) ε is Gaussian, and the optimal (MMSE) ε-predictor is linear:
    E[ε | x_t] = √(1-ᾱ) (x_t - √ᾱ μ) / (ᾱ s² + 1 - ᾱ).
"""
from __future__ import annotations

import torch

from ddpmkit import Denoiser
from ddpmkit.schedules import Schedule, gather


def gaussian_eps(s: Schedule, mu: float, sigma: float):
    """net(x_t, t[, cond]) -> exact E[ε | x_t] for Gaussian data N(mu, sigma²)."""

    def net(x_t: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        ab = gather(s.alphas_cumprod, t, x_t.double())
        eps = (1 - ab).sqrt() * (x_t.double() - ab.sqrt() * mu) / (ab * sigma ** 2 + 1 - ab)
        return eps.to(x_t.dtype)

    return net


def gaussian_denoiser(s: Schedule, mu: float, sigma: float, variance: str = "fixed_small") -> Denoiser:
    return Denoiser(gaussian_eps(s, mu, sigma), s, prediction="eps", variance=variance)
