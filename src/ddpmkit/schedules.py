"""Noise schedules β_1..β_T and every quantity derived from them, computed once in float64.

Index convention: arrays are indexed by the integer timestep t ∈ [0, T-1]; index t holds the paper's step t+1
(Ho et al. number steps 1..T). ``gather`` is the one helper that picks a value per sample and broadcasts it.
"""
from __future__ import annotations

import math
from typing import Literal

import torch

ScheduleName = Literal["linear", "cosine", "sigmoid"]


class Schedule:
    """A discrete forward process. Every tensor is float64 and of length T; treat them as read-only."""

    def __init__(self, betas: torch.Tensor, name: str = "custom") -> None:
        b = torch.as_tensor(betas, dtype=torch.float64).detach().clone()
        if b.ndim != 1 or len(b) < 2:
            raise ValueError("betas must be a 1-D tensor of at least 2 steps")
        if not bool(((b > 0) & (b < 1)).all()):
            raise ValueError("every beta must lie in (0, 1)")
        self.name = name
        self.betas = b
        self.alphas = 1.0 - b
        ac = torch.cumprod(self.alphas, 0)
        ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        self.alphas_cumprod = ac
        self.alphas_cumprod_prev = ac_prev
        self.sqrt_alphas_cumprod = ac.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - ac).sqrt()
        # Ho et al. eq. (7): q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, β̃_t I)
        self.posterior_variance = b * (1.0 - ac_prev) / (1.0 - ac)
        self.posterior_mean_coef1 = b * ac_prev.sqrt() / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - ac_prev) * self.alphas.sqrt() / (1.0 - ac)
        # β̃ is 0 at t = 0: its log is clipped to β̃ of the next step (Ho et al.; improved-diffusion).
        pv1 = self.posterior_variance[1:2]
        self.posterior_log_variance_clipped = torch.log(torch.cat([pv1, self.posterior_variance[1:]]))
        # Fixed-large variance: log β_t, with β̃ at t = 0 so the decoder is not too wide (Ho et al.).
        self.log_betas_large = torch.log(torch.cat([pv1, b[1:]]))
        self.snr = ac / (1.0 - ac)

    def __repr__(self) -> str:
        return f"Schedule(name={self.name!r}, num_steps={self.num_steps})"

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ at integer timesteps, with the convention ᾱ_{-1} = 1 (the clean image), float64."""
        padded = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        return padded[(t.long() + 1).cpu()]

    def to_dict(self) -> dict:
        return {"name": self.name, "num_steps": self.num_steps}


def gather(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """values[t] for each sample, shaped [N, 1, 1, ...] to broadcast against ``like`` and cast to its dtype/device."""
    if not torch.is_tensor(t):
        t = torch.full((like.shape[0],), int(t), dtype=torch.long)
    out = values[t.long().cpu()] if values.device.type == "cpu" else values[t.long()]
    if out.ndim == 0:
        out = out.expand(like.shape[0])
    return out.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def linear(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Ho et al. (2020): β linear from 1e-4 to 0.02 for T = 1000; the ends scale by 1000/T for other T."""
    _check_steps(num_steps)
    scale = 1000.0 / num_steps
    betas = torch.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=torch.float64)
    return Schedule(betas.clamp(max=0.999), name="linear")


def _betas_from_alpha_bar(alpha_bar, num_steps: int, max_beta: float = 0.999) -> torch.Tensor:
    i = torch.arange(num_steps, dtype=torch.float64)
    betas = 1.0 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps)
    return betas.clamp(min=1e-12, max=max_beta)


def cosine(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal (2021) eq. (17): ᾱ(t) = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2), β ≤ 0.999."""
    _check_steps(num_steps)

    def f(u: torch.Tensor) -> torch.Tensor:
        return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    return Schedule(_betas_from_alpha_bar(lambda u: f(u) / f(torch.zeros(())), num_steps, max_beta), name="cosine")


def sigmoid(num_steps: int = 1000, start: float = -3.0, end: float = 3.0, tau: float = 1.0,
            max_beta: float = 0.999) -> Schedule:
    """Chen (2023), 'On the importance of noise scheduling': ᾱ(t) follows a shifted, scaled sigmoid."""
    _check_steps(num_steps)
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))

    def alpha_bar(u: torch.Tensor) -> torch.Tensor:
        return (v_end - torch.sigmoid((u * (end - start) + start) / tau)) / (v_end - v_start)

    return Schedule(_betas_from_alpha_bar(alpha_bar, num_steps, max_beta), name="sigmoid")


BUILDERS = {"linear": linear, "cosine": cosine, "sigmoid": sigmoid}


def build(name: str, num_steps: int = 1000) -> Schedule:
    """The named schedule with its paper defaults."""
    if name not in BUILDERS:
        raise ValueError(f"unknown schedule {name!r}: choose one of {', '.join(BUILDERS)}")
    return BUILDERS[name](num_steps)


def _check_steps(num_steps: int) -> None:
    if int(num_steps) < 2:
        raise ValueError(f"a schedule needs at least 2 steps, got {num_steps}")


__all__ = ["Schedule", "gather", "linear", "cosine", "sigmoid", "build", "ScheduleName"]
