"""Timestep grids and the noise helper shared by every sampler."""
from __future__ import annotations

import torch

from ..schedules import Schedule


def linspace_timesteps(num_train_steps: int, num_steps: int) -> torch.Tensor:
    """``num_steps`` distinct timesteps evenly spread from T-1 down to 0 (descending, both ends included)."""
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"steps must be between 1 and {num_train_steps}, got {num_steps}")
    if num_steps == 1:
        return torch.tensor([num_train_steps - 1], dtype=torch.long)
    ts = torch.linspace(num_train_steps - 1, 0, num_steps, dtype=torch.float64).round().long()
    return ts


def as_timesteps(s: Schedule, timesteps) -> torch.Tensor:
    """None → every step T-1..0; an int K → K evenly spaced steps; a sequence → itself, checked descending."""
    if timesteps is None:
        return torch.arange(s.num_steps - 1, -1, -1, dtype=torch.long)
    if isinstance(timesteps, int):
        return linspace_timesteps(s.num_steps, timesteps)
    ts = torch.as_tensor(timesteps, dtype=torch.long).flatten().cpu()
    if len(ts) == 0 or bool((ts[1:] >= ts[:-1]).any()) or ts.max() >= s.num_steps or ts.min() < 0:
        raise ValueError(f"timesteps must be strictly descending integers in [0, {s.num_steps - 1}]")
    return ts


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like x, drawn from ``generator`` on its own device so a seed is reproducible."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=device, dtype=torch.float32).to(x.device, x.dtype)
