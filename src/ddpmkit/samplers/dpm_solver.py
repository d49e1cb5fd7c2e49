"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): a second-order multistep solver of the
diffusion ODE in data prediction, over a timestep grid.

Notation (Lu et al. §3): α_t = √ᾱ_t, σ_t = √(1-ᾱ_t), λ_t = log(α_t/σ_t), h_i = λ_{t_i} - λ_{t_{i-1}}.
The step is pure: the multistep memory (the previous x̂_0 and the timestep it was predicted at) is passed in.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from ..denoiser import Denoiser
from ..diffusion import predict_x0_eps, split_output
from ..schedules import Schedule
from .ddim import _bc, _per_sample
from .grids import Spacing, as_timesteps, consume, previous_timesteps


def _alpha_sigma_lambda(s: Schedule, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ab = s.alpha_bar(t)
    alpha, sigma = ab.sqrt(), (1.0 - ab).sqrt()
    return alpha, sigma, alpha.log() - sigma.log()      # λ = +∞ at t = -1 (σ = 0)


def dpmpp_2m_step(s: Schedule, model_output: torch.Tensor, t, t_prev, x_t: torch.Tensor,
                  last: tuple[torch.Tensor, Any] | None = None, prediction: str = "eps", clip_x0: bool = True,
                  variance: str = "fixed_small") -> tuple[torch.Tensor, torch.Tensor]:
    """One DPM-Solver++(2M) step x_t → x_{t_prev} (t_prev = -1: to x_0). Pure; returns (x_prev, x̂_0).

    ``last`` = (x̂_0 of the previous step, the timestep it was predicted at), or None for the first step.
    First order (= DDIM, η = 0):  x_prev = (σ_prev/σ_t) x_t - α_prev (e^{-h} - 1) x̂_0.
    Second order (Alg. 2, line 7): the same with D = (1 + 1/(2r)) x̂_0 - 1/(2r) x̂_0^last, r = h_last/h.
    The step to x_0 (λ = ∞) is first order, which there is exactly x_prev = x̂_0 ("lower order final").
    """
    pred, _ = split_output(model_output, x_t.shape[1], variance)
    n = x_t.shape[0]
    t, t_prev = _per_sample(t, n), _per_sample(t_prev, n)
    x0, _ = predict_x0_eps(s, prediction, pred, x_t, t, clip_x0)
    alpha_t, sigma_t, lam_t = _alpha_sigma_lambda(s, t)
    alpha_p, sigma_p, lam_p = _alpha_sigma_lambda(s, t_prev)
    h = lam_p - lam_t
    phi = -torch.expm1(-h)                               # 1 - e^{-h}, = 1 when h = ∞
    d = x0
    final = t_prev < 0
    if last is not None and not bool(final.all()):
        x0_last, t_last = last
        _, _, lam_last = _alpha_sigma_lambda(s, _per_sample(t_last, n))
        r = (lam_t - lam_last) / torch.where(final, torch.ones_like(h), h)
        c = torch.where(final, torch.zeros_like(r), 0.5 / r)
        d = x0 + _bc(c, x_t) * (x0 - x0_last)
    x_prev = _bc(sigma_p / sigma_t, x_t) * x_t + _bc(alpha_p * phi, x_t) * d
    return x_prev, x0


def iterate_dpmpp_2m(denoiser: Denoiser, x: torch.Tensor, timesteps=None, cond: Any = None, clip_x0: bool = True,
                     generator: torch.Generator | None = None, spacing: Spacing = "trailing") -> Iterator[dict]:
    """The progressive path, yielding {"i", "t", "x", "x0_pred"}; ``generator`` is unused (the solver is deterministic)."""
    s = denoiser.schedule
    ts = as_timesteps(s, timesteps, spacing)
    last = None
    for i, (t, t_prev) in enumerate(zip(ts.tolist(), previous_timesteps(ts).tolist())):
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        with torch.no_grad():
            out = denoiser(x, tt, cond)
        x, x0 = dpmpp_2m_step(s, out.to(x.dtype), t, t_prev, x, last=last, prediction=denoiser.prediction,
                              clip_x0=clip_x0, variance=denoiser.variance)
        last = (x0, t)
        yield {"i": i, "t": t, "x": x, "x0_pred": x0}


def sample_dpmpp_2m(denoiser: Denoiser, x: torch.Tensor, timesteps=None, cond: Any = None, clip_x0: bool = True,
                    generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                    spacing: Spacing = "trailing") -> torch.Tensor:
    """DPM-Solver++(2M) from x = x_{t_0} to x_0. ``timesteps``: None (all T), a count K, or a grid."""
    return consume(iterate_dpmpp_2m(denoiser, x, timesteps, cond, clip_x0, generator, spacing), callback)
