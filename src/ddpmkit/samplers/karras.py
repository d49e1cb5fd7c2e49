"""Heun (2nd order) and Euler samplers in σ-space: Karras, Aittala, Aila & Laine (2022), "Elucidating the Design
Space of Diffusion-Based Generative Models" (EDM), Algorithm 1, and Algorithm 2 for the optional churn.

A VP model (x_t = √ᾱ x_0 + √(1-ᾱ) ε) is the same process seen in σ-space: x_σ = x_t/√ᾱ = x_0 + σ ε with
σ = √((1-ᾱ)/ᾱ), so ᾱ = 1/(1+σ²). ``sigma_denoiser`` wraps the VP network as EDM's D(x_σ; σ): it feeds
x_t = x_σ/√(1+σ²) and the *fractional* timestep t(σ) (log σ interpolated between training timesteps, as
diffusers' Euler/Heun schedulers do; exact at the training σ) and returns x̂_0. A network sees fractional t only
when σ falls between training levels (the Karras grid, or churn); its sinusoidal time embedding takes real t.
Samplers take and return VP-space tensors: x is x_t at the grid's first level σ_0, the result is x_0.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import torch

from ..denoiser import Denoiser
from ..diffusion import split_output
from .ddim import _bc
from ..diffusion import threshold_x0
from .grids import Spacing, as_sigmas, consume, randn_like, sigma_to_t


def _per_sample_sigma(sigma, n: int) -> torch.Tensor:
    sig = torch.as_tensor(sigma, dtype=torch.float64).cpu()
    return sig.expand(n) if sig.ndim == 0 else sig


def _x0_from_output(prediction: str, pred: torch.Tensor, x_sigma: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x̂_0 in σ-space from the network's mean parameter, with ᾱ = 1/(1+σ²) and x_t = √ᾱ x_σ."""
    if prediction == "eps":
        return x_sigma - _bc(sigma, x_sigma) * pred                          # x_σ = x_0 + σ ε
    if prediction == "x0":
        return pred
    if prediction == "v":                                                    # x_0 = √ᾱ x_t - √(1-ᾱ) v
        ab = 1.0 / (1.0 + sigma ** 2)
        return _bc(ab, x_sigma) * x_sigma - _bc((1.0 - ab).sqrt(), x_sigma) * pred
    raise ValueError(f"unknown prediction {prediction!r}: choose one of eps, x0, v")


def sigma_denoiser(denoiser: Denoiser, cond: Any = None,
                   clip_x0: bool = True) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """EDM's D(x_σ; σ) for a VP denoiser: a pure function (x_σ, σ as float or [N]) -> x̂_0 (learned variance:
    mean channels only)."""
    s = denoiser.schedule

    def denoise(x_sigma: torch.Tensor, sigma) -> torch.Tensor:
        sig = _per_sample_sigma(sigma, x_sigma.shape[0])
        x_t = x_sigma * _bc((1.0 + sig ** 2).rsqrt(), x_sigma)
        t = sigma_to_t(s, sig).to(device=x_sigma.device, dtype=torch.float32)
        with torch.no_grad():
            out = denoiser(x_t, t, cond)
        pred, _ = split_output(out.to(x_sigma.dtype), x_sigma.shape[1], denoiser.variance)
        x0 = _x0_from_output(denoiser.prediction, pred, x_sigma, sig)
        return threshold_x0(x0, clip_x0)

    return denoise


# --- pure steps in σ-space -------------------------------------------------------------------------------------

def euler_step(x: torch.Tensor, sigma, sigma_next, x0_pred: torch.Tensor) -> torch.Tensor:
    """EDM Alg. 1 lines 4-5: d = (x - D(x; σ))/σ, x_next = x + (σ_next - σ) d."""
    n = x.shape[0]
    sig, sig_next = _per_sample_sigma(sigma, n), _per_sample_sigma(sigma_next, n)
    d = (x - x0_pred) / _bc(sig, x)
    return x + _bc(sig_next - sig, x) * d


def heun_step(x: torch.Tensor, sigma, sigma_next, x0_pred: torch.Tensor, x0_pred_next: torch.Tensor) -> torch.Tensor:
    """EDM Alg. 1 lines 6-8, the trapezoidal correction: with x̃ = euler_step(x, σ, σ', D) and D' = D(x̃; σ') > 0,
    d' = (x̃ - D')/σ' and x_next = x + (σ' - σ)(d + d')/2. Needs σ' > 0; the last step to σ = 0 is Euler."""
    n = x.shape[0]
    sig, sig_next = _per_sample_sigma(sigma, n), _per_sample_sigma(sigma_next, n)
    if bool((sig_next <= 0).any()):
        raise ValueError("heun_step needs sigma_next > 0; take the final step to sigma = 0 with euler_step")
    d = (x - x0_pred) / _bc(sig, x)
    x_euler = x + _bc(sig_next - sig, x) * d
    d_next = (x_euler - x0_pred_next) / _bc(sig_next, x)
    return x + _bc(sig_next - sig, x) * 0.5 * (d + d_next)


def churn_step(x: torch.Tensor, sigma: float, gamma: float, noise: torch.Tensor,
               s_noise: float = 1.0) -> tuple[torch.Tensor, float]:
    """EDM Alg. 2 lines 5-6: raise the noise level to σ̂ = σ(1 + γ) with fresh noise: x̂ = x + √(σ̂² - σ²) S_noise ε."""
    sigma_hat = sigma * (1.0 + gamma)
    return x + math.sqrt(max(sigma_hat ** 2 - sigma ** 2, 0.0)) * s_noise * noise, sigma_hat


# --- loops -------------------------------------------------------------------------------------------------------

def _iterate(second_order: bool, denoiser: Denoiser, x: torch.Tensor, sigmas, cond: Any, clip_x0: bool,
             generator: torch.Generator | None, spacing: Spacing, churn: float, s_tmin: float, s_tmax: float,
             s_noise: float) -> Iterator[dict]:
    s = denoiser.schedule
    sig = as_sigmas(s, sigmas, spacing).tolist()
    steps = len(sig) - 1
    denoise = sigma_denoiser(denoiser, cond, clip_x0)
    x = x * math.sqrt(1.0 + sig[0] ** 2)                       # VP x_t → σ-space x_σ
    for i in range(steps):
        sigma, sigma_next = sig[i], sig[i + 1]
        gamma = min(churn / steps, math.sqrt(2.0) - 1.0) if churn > 0 and s_tmin <= sigma <= s_tmax else 0.0
        if gamma > 0:
            x, sigma = churn_step(x, sigma, gamma, randn_like(x, generator), s_noise)
        x0 = denoise(x, sigma)
        x_next = euler_step(x, sigma, sigma_next, x0)
        if second_order and sigma_next > 0:
            x_next = heun_step(x, sigma, sigma_next, x0, denoise(x_next, sigma_next))
        x = x_next
        t = float(sigma_to_t(s, torch.tensor(sigma, dtype=torch.float64)))
        yield {"i": i, "t": t, "x": x / math.sqrt(1.0 + sigma_next ** 2), "x0_pred": x0}


def iterate_heun(denoiser: Denoiser, x: torch.Tensor, sigmas=None, cond: Any = None, clip_x0: bool = True,
                 generator: torch.Generator | None = None, spacing: Spacing = "karras", churn: float = 0.0,
                 s_tmin: float = 0.0, s_tmax: float = math.inf, s_noise: float = 1.0) -> Iterator[dict]:
    """Heun's 2nd-order sampler (EDM Alg. 1; Alg. 2 when churn > 0), yielding {"i", "t", "x", "x0_pred"} per step:
    "t" is the (fractional) timestep of the step's starting level, "x" the new state in VP space. K levels cost
    2K - 1 network evaluations. ``sigmas``: None (every training level), a count K with ``spacing``, or a grid."""
    return _iterate(True, denoiser, x, sigmas, cond, clip_x0, generator, spacing, churn, s_tmin, s_tmax, s_noise)


def iterate_euler(denoiser: Denoiser, x: torch.Tensor, sigmas=None, cond: Any = None, clip_x0: bool = True,
                  generator: torch.Generator | None = None, spacing: Spacing = "karras", churn: float = 0.0,
                  s_tmin: float = 0.0, s_tmax: float = math.inf, s_noise: float = 1.0) -> Iterator[dict]:
    """Euler's method on the probability-flow ODE in σ-space (EDM Alg. 1 without line 6-8): one evaluation per level."""
    return _iterate(False, denoiser, x, sigmas, cond, clip_x0, generator, spacing, churn, s_tmin, s_tmax, s_noise)


def sample_heun(denoiser: Denoiser, x: torch.Tensor, sigmas=None, cond: Any = None, clip_x0: bool = True,
                generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                spacing: Spacing = "karras", churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
                s_noise: float = 1.0) -> torch.Tensor:
    """Heun from the VP state x at σ_0 (x_T ~ N(0, I) for the default grids) to x_0."""
    return consume(iterate_heun(denoiser, x, sigmas, cond, clip_x0, generator, spacing, churn, s_tmin, s_tmax,
                                s_noise), callback)


def sample_euler(denoiser: Denoiser, x: torch.Tensor, sigmas=None, cond: Any = None, clip_x0: bool = True,
                 generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                 spacing: Spacing = "karras", churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
                 s_noise: float = 1.0) -> torch.Tensor:
    """Euler from the VP state x at σ_0 to x_0."""
    return consume(iterate_euler(denoiser, x, sigmas, cond, clip_x0, generator, spacing, churn, s_tmin, s_tmax,
                                 s_noise), callback)
