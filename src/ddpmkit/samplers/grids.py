"""Timestep and noise-level grids, and the noise helper shared by every sampler.

Integer grids are descending timesteps t_0 > t_1 > ... > t_{K-1} in [0, T-1]. Step i goes from t_i to
t_{i+1}, and the last step goes to t = -1, the clean image (ᾱ_{-1} = 1); ``previous_timesteps`` gives that pairing.
Spacings follow Lin et al. (2024), "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2:

* ``leading``:  t = k·⌊T/K⌋ for k = K-1..0 (ends at 0, does not reach T-1 unless K divides T and ⌊T/K⌋ = 1);
* ``trailing``: t = round(T·k/K) - 1 for k = K..1 (starts at T-1; the last step from ≈T/K - 1 to x_0 is as long as the rest);
* ``linspace``: t = round((T-1)·k/(K-1)) for k = K-1..0 (both ends);
* ``karras``:   the timesteps nearest to Karras et al. (2022) eq. (5) noise levels, made strictly descending.

σ-space grids (Heun, Euler) are descending noise levels σ_0 > ... > σ_{K-1} > σ_K = 0 with σ = √((1-ᾱ)/ᾱ);
``karras_sigmas`` is EDM eq. (5) itself, not rounded to the training timesteps.
"""
from __future__ import annotations

import numbers
from typing import Literal

import torch

from ..schedules import Schedule

Spacing = Literal["leading", "trailing", "linspace", "karras"]
SPACINGS: tuple[str, ...] = ("leading", "trailing", "linspace", "karras")
KARRAS_RHO = 7.0  # Karras et al. (2022) §3, "ρ = 7"


def _check_count(num_train_steps: int, num_steps: int) -> None:
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"steps must be between 1 and {num_train_steps}, got {num_steps}")


def leading_timesteps(num_train_steps: int, num_steps: int) -> torch.Tensor:
    """t = k·⌊T/K⌋, k = K-1..0 (DDIM's original grid, Song et al. 2021 §D.2 'linear' τ)."""
    _check_count(num_train_steps, num_steps)
    ratio = num_train_steps // num_steps
    return torch.arange(num_steps - 1, -1, -1, dtype=torch.long) * ratio


def trailing_timesteps(num_train_steps: int, num_steps: int) -> torch.Tensor:
    """t = round(T·k/K) - 1, k = K..1 (Lin et al. 2024 Table 2). Ties round half to even, as numpy does."""
    _check_count(num_train_steps, num_steps)
    k = torch.arange(num_steps, 0, -1, dtype=torch.float64)
    return (num_train_steps * k / num_steps).round().long() - 1


def linspace_timesteps(num_train_steps: int, num_steps: int) -> torch.Tensor:
    """``num_steps`` distinct timesteps evenly spread from T-1 down to 0 (descending, both ends included)."""
    _check_count(num_train_steps, num_steps)
    if num_steps == 1:
        return torch.tensor([num_train_steps - 1], dtype=torch.long)
    k = torch.arange(num_steps - 1, -1, -1, dtype=torch.float64)
    # The spacing (T-1)/(K-1) is ≥ 1, so rounding cannot merge two neighbours.
    return ((num_train_steps - 1) * k / (num_steps - 1)).round().long()


# --- noise levels σ = √((1-ᾱ)/ᾱ) ---------------------------------------------------------------------------------

def schedule_sigmas(s: Schedule) -> torch.Tensor:
    """σ_t = √((1-ᾱ_t)/ᾱ_t) for t = 0..T-1, float64 ascending: x_t/√ᾱ_t = x_0 + σ_t ε (Karras et al. 2022 §2)."""
    ac = s.alphas_cumprod
    return ((1.0 - ac) / ac).sqrt()


def sigma_to_t(s: Schedule, sigma: torch.Tensor) -> torch.Tensor:
    """The fractional timestep of each noise level: log σ interpolated linearly between neighbouring training
    timesteps (as diffusers' Euler/Heun schedulers do), exact at the training σ, clamped to [0, T-1]. float64."""
    log_table = schedule_sigmas(s).log()
    log_sigma = torch.as_tensor(sigma, dtype=torch.float64).clamp(min=1e-10).log()
    hi = torch.searchsorted(log_table, log_sigma).clamp(1, len(log_table) - 1)
    lo = hi - 1
    w = (log_sigma - log_table[lo]) / (log_table[hi] - log_table[lo])
    return (lo.to(torch.float64) + w).clamp(0.0, float(len(log_table) - 1))


def karras_sigmas(sigma_min: float, sigma_max: float, num_steps: int, rho: float = KARRAS_RHO) -> torch.Tensor:
    """Karras et al. (2022) eq. (5): σ_i = (σ_max^{1/ρ} + i/(N-1)·(σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ, i = 0..N-1. float64."""
    if num_steps < 1:
        raise ValueError(f"steps must be at least 1, got {num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    if num_steps == 1:
        return torch.tensor([float(sigma_max)], dtype=torch.float64)
    ramp = torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64)
    lo, hi = float(sigma_min) ** (1.0 / rho), float(sigma_max) ** (1.0 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def karras_timesteps(s: Schedule, num_steps: int, rho: float = KARRAS_RHO) -> torch.Tensor:
    """Integer grid for discrete-time samplers: round(t(σ_i)) of the Karras levels between σ_0 and σ_{T-1}.

    ρ = 7 crowds the low-noise end, so for large K several levels round to one timestep; we keep K distinct
    timesteps by clipping t_i into [K-1-i, T-1-i] and then pushing each one above its successor. The grid
    still starts at T-1 and ends at 0.
    """
    T = s.num_steps
    _check_count(T, num_steps)
    table = schedule_sigmas(s)
    raw = sigma_to_t(s, karras_sigmas(float(table[0]), float(table[-1]), num_steps, rho)).round().long()
    i = torch.arange(num_steps)
    ts = torch.minimum(torch.maximum(raw, num_steps - 1 - i), T - 1 - i)
    for j in range(num_steps - 2, -1, -1):   # ts[j] ≤ T-1-j always holds, and ts[j+1] + 1 ≤ T-1-j too
        ts[j] = max(int(ts[j]), int(ts[j + 1]) + 1)
    return ts


def make_timesteps(s: Schedule, num_steps: int, spacing: Spacing = "linspace") -> torch.Tensor:
    """A descending integer grid of ``num_steps`` timesteps with the named spacing."""
    if spacing == "leading":
        return leading_timesteps(s.num_steps, num_steps)
    if spacing == "trailing":
        return trailing_timesteps(s.num_steps, num_steps)
    if spacing == "linspace":
        return linspace_timesteps(s.num_steps, num_steps)
    if spacing == "karras":
        return karras_timesteps(s, num_steps)
    raise ValueError(f"unknown spacing {spacing!r}: choose one of {', '.join(SPACINGS)}")


def make_sigmas(s: Schedule, num_steps: int, spacing: Spacing = "karras", rho: float = KARRAS_RHO) -> torch.Tensor:
    """A descending σ grid of ``num_steps`` levels followed by σ = 0 (length K + 1), float64.

    ``karras`` spans [σ(0), σ(T-1)] of the schedule with EDM eq. (5); the other spacings take σ at their
    integer timesteps, so a σ-space sampler visits exactly the timesteps a discrete sampler would.
    """
    if spacing == "karras":
        _check_count(s.num_steps, num_steps)
        table = schedule_sigmas(s)
        sig = karras_sigmas(float(table[0]), float(table[-1]), num_steps, rho)
    else:
        sig = schedule_sigmas(s)[make_timesteps(s, num_steps, spacing)]
    return torch.cat([sig, sig.new_zeros(1)])


def previous_timesteps(timesteps: torch.Tensor) -> torch.Tensor:
    """t_prev of every step of a descending grid: the next grid point, and -1 (the clean image) after the last."""
    ts = torch.as_tensor(timesteps, dtype=torch.long).flatten()
    return torch.cat([ts[1:], ts.new_full((1,), -1)])


def _as_count(x) -> int | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, numbers.Integral):
        return int(x)
    if torch.is_tensor(x) and x.ndim == 0 and not x.is_floating_point():
        return int(x)
    if getattr(x, "ndim", None) == 0 and hasattr(x, "dtype") and getattr(x.dtype, "kind", "") in "iu":
        return int(x)   # a numpy integer scalar
    return None


def as_timesteps(s: Schedule, timesteps, spacing: Spacing = "linspace") -> torch.Tensor:
    """None → every step T-1..0; an integer K (Python, numpy or 0-d tensor) → K steps with ``spacing``;
    a sequence → itself, checked strictly descending in [0, T-1]."""
    if timesteps is None:
        return torch.arange(s.num_steps - 1, -1, -1, dtype=torch.long)
    count = _as_count(timesteps)
    if count is not None:
        return make_timesteps(s, count, spacing)
    ts = torch.as_tensor(timesteps).flatten().cpu()
    if ts.is_floating_point() and bool((ts != ts.round()).any()):
        raise ValueError("timesteps must be integers; use a σ-space sampler (heun, euler) for fractional levels")
    ts = ts.long()
    if len(ts) == 0 or bool((ts[1:] >= ts[:-1]).any()) or ts.max() >= s.num_steps or ts.min() < 0:
        raise ValueError(f"timesteps must be strictly descending integers in [0, {s.num_steps - 1}]")
    return ts


def as_sigmas(s: Schedule, sigmas, spacing: Spacing = "karras") -> torch.Tensor:
    """None → σ at every training step then 0; an integer K → ``make_sigmas(s, K, spacing)``;
    a sequence → itself (float64), checked strictly descending, positive, and given a final 0 if it lacks one."""
    if sigmas is None:
        return make_sigmas(s, s.num_steps, "linspace")
    count = _as_count(sigmas)
    if count is not None:
        return make_sigmas(s, count, spacing)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten().cpu()
    if len(sig) == 0:
        raise ValueError("sigmas must not be empty")
    if sig[-1] != 0:
        sig = torch.cat([sig, sig.new_zeros(1)])
    if bool((sig[1:] >= sig[:-1]).any()) or bool((sig[:-1] <= 0).any()):
        raise ValueError("sigmas must be strictly descending and positive, ending with 0")
    return sig


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn from ``generator`` on its own device so a seed is reproducible."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=torch.float32).to(x.device, x.dtype)


def consume(states, callback=None) -> torch.Tensor:
    """Run a progressive sampler to the end: every state goes to ``callback``; returns the last x (x_0)."""
    x = None
    for state in states:
        x = state["x"]
        if callback is not None:
            callback(state)
    return x
