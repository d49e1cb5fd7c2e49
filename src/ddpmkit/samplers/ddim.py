"""DDIM (Song, Meng & Ermon 2021): the η-family of samplers over a timestep grid, and its inversion x_0 → x_T.

``ddim_step`` is pure: coefficients come from the pair (ᾱ_t, ᾱ_prev) in float64, with ᾱ_{-1} = 1 for the final
step "to x_0", so any descending grid works, whether or not its step count divides T.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from ..denoiser import Denoiser
from ..diffusion import predict_x0_eps, split_output
from ..schedules import Schedule
from .grids import Spacing, as_timesteps, consume, previous_timesteps, randn_like


def _per_sample(t, n: int) -> torch.Tensor:
    """An int or tensor timestep as a long tensor [n] on the CPU."""
    t = torch.as_tensor(t).long().cpu()
    return t.expand(n) if t.ndim == 0 else t


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A float64 per-sample coefficient [N], cast and shaped [N, 1, ...] to broadcast against ``like``."""
    return v.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def ddim_step(s: Schedule, model_output: torch.Tensor, t, t_prev, x_t: torch.Tensor, eta: float = 0.0,
              noise: torch.Tensor | None = None, prediction: str = "eps", clip_x0: bool = True,
              variance: str = "fixed_small") -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step x_t → x_{t_prev} (t_prev = -1: to x_0). Pure; returns (x_prev, x̂_0).

    Song et al. eq. (12): x_prev = √ᾱ_prev x̂_0 + √(1 - ᾱ_prev - σ²) ε̂ + σ z, with eq. (16):
    σ = η √((1-ᾱ_prev)/(1-ᾱ_t)) √(1 - ᾱ_t/ᾱ_prev). η = 0 is deterministic; η = 1 is the ancestral step's variance.
    With ``clip_x0`` the clipped x̂_0 also re-derives ε̂, as in improved-diffusion. For a learned-variance
    model pass variance="learned"; only the mean channels are read.
    """
    pred, _ = split_output(model_output, x_t.shape[1], variance)
    n = x_t.shape[0]
    t, t_prev = _per_sample(t, n), _per_sample(t_prev, n)
    x0, eps = predict_x0_eps(s, prediction, pred, x_t, t, clip_x0)
    ab_t, ab_prev = s.alpha_bar(t), s.alpha_bar(t_prev)
    sigma = eta * ((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev)).clamp(min=0.0).sqrt()
    direction = (1.0 - ab_prev - sigma ** 2).clamp(min=0.0).sqrt()     # "direction pointing to x_t"
    x_prev = _bc(ab_prev.sqrt(), x_t) * x0 + _bc(direction, x_t) * eps
    if bool((sigma > 0).any()):
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs noise: pass noise=randn_like(x_t, generator)")
        x_prev = x_prev + _bc(sigma, x_t) * noise
    return x_prev, x0


def iterate_ddim(denoiser: Denoiser, x: torch.Tensor, timesteps=None, cond: Any = None, eta: float = 0.0,
                 clip_x0: bool = True, generator: torch.Generator | None = None,
                 spacing: Spacing = "trailing") -> Iterator[dict]:
    """The progressive path: from x = x_{t_0} over the descending grid, yielding {"i", "t", "x", "x0_pred"}
    after every step ("t" is the step's starting timestep, "x" the new state)."""
    s = denoiser.schedule
    ts = as_timesteps(s, timesteps, spacing)
    for i, (t, t_prev) in enumerate(zip(ts.tolist(), previous_timesteps(ts).tolist())):
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        with torch.no_grad():
            out = denoiser(x, tt, cond)
        noise = randn_like(x, generator) if eta > 0 and t_prev >= 0 else None
        x, x0 = ddim_step(s, out.to(x.dtype), t, t_prev, x, eta=eta, noise=noise, prediction=denoiser.prediction,
                          clip_x0=clip_x0, variance=denoiser.variance)
        yield {"i": i, "t": t, "x": x, "x0_pred": x0}


def sample_ddim(denoiser: Denoiser, x: torch.Tensor, timesteps=None, cond: Any = None, eta: float = 0.0,
                clip_x0: bool = True, generator: torch.Generator | None = None,
                callback: Callable[[dict], None] | None = None, spacing: Spacing = "trailing") -> torch.Tensor:
    """DDIM from x = x_{t_0} (usually x_T ~ N(0, I)) to x_0. ``timesteps``: None (all T), a count K, or a grid."""
    return consume(iterate_ddim(denoiser, x, timesteps, cond, eta, clip_x0, generator, spacing), callback)


# --- inversion ---------------------------------------------------------------------------------------------------

def ddim_invert_step(s: Schedule, model_output: torch.Tensor, t, t_next, x_t: torch.Tensor, prediction: str = "eps",
                     variance: str = "fixed_small") -> tuple[torch.Tensor, torch.Tensor]:
    """One inversion step x_t → x_{t_next} (t_next > t; t = -1 is the clean image). Pure; returns (x_next, x̂_0).

    ``model_output`` is the network at (x_t, t_next): the level the matching sampling step t_next → t evaluates,
    with x_t standing in for the unknown x_{t_next} (Song et al. §4.3; Mokady et al. 2023). ε̂ is read at t_next,
    x̂_0 = (x_t - √(1-ᾱ_t) ε̂)/√ᾱ_t, and x_next = √ᾱ_next x̂_0 + √(1-ᾱ_next) ε̂, so for an ε-model this step is the
    exact inverse of ``ddim_step(eta=0, clip_x0=False)`` given the same output. No clipping: it would break that.
    """
    pred, _ = split_output(model_output, x_t.shape[1], variance)
    n = x_t.shape[0]
    t, t_next = _per_sample(t, n), _per_sample(t_next, n)
    if bool((t_next <= t).any()):
        raise ValueError("ddim_invert_step needs t_next > t")
    if prediction == "eps":
        eps = pred
    else:
        _, eps = predict_x0_eps(s, prediction, pred, x_t, t_next)
    ab_t, ab_next = s.alpha_bar(t), s.alpha_bar(t_next)
    x0 = (x_t - _bc((1.0 - ab_t).sqrt(), x_t) * eps) / _bc(ab_t.sqrt(), x_t)
    return _bc(ab_next.sqrt(), x_t) * x0 + _bc((1.0 - ab_next).sqrt(), x_t) * eps, x0


def ddim_invert(denoiser: Denoiser, x0: torch.Tensor, timesteps=None, cond: Any = None,
                callback: Callable[[dict], None] | None = None, spacing: Spacing = "trailing",
                fixed_point_iters: int = 0) -> torch.Tensor:
    """Deterministic DDIM inversion: walk the sampling grid upwards from x_0 (t = -1) to x_{t_0}, so that
    ``sample_ddim(denoiser, ddim_invert(denoiser, x0, grid), grid, eta=0, clip_x0=False)`` ≈ x0.

    Plain inversion evaluates the network at the current x (error O(1/K) in the round trip). With
    ``fixed_point_iters`` = n > 0 each step re-evaluates it n times at the latest estimate of x_{t_next}, iterating
    x_next ← step(ε̂(x_next, t_next)) towards the exact inverse of the sampling step (Pan et al. 2023, "Effective
    real image editing with accelerated iterative diffusion inversion"); it costs n more evaluations per step.
    The callback gets {"i", "t", "x", "x0_pred"} with "t" the timestep just reached.
    """
    s = denoiser.schedule
    ts = as_timesteps(s, timesteps, spacing)
    x = x0
    uphill = torch.cat([ts.new_full((1,), -1), ts.flip(0)]).tolist()
    for i, (t, t_next) in enumerate(zip(uphill[:-1], uphill[1:])):
        tt = torch.full((x.shape[0],), t_next, dtype=torch.long, device=x.device)
        guess = x
        for _ in range(1 + fixed_point_iters):
            with torch.no_grad():
                out = denoiser(guess, tt, cond)
            guess, x0_pred = ddim_invert_step(s, out.to(x.dtype), t, t_next, x, denoiser.prediction,
                                              denoiser.variance)
        x = guess
        if callback is not None:
            callback({"i": i, "t": t_next, "x": x, "x0_pred": x0_pred})
    return x
