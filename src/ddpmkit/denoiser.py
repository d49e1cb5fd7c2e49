"""The denoiser interface: ``denoiser(x_t, t, cond) -> output`` plus what the samplers need to read that output.

The network knows nothing about schedules and the diffusion math knows nothing about layers; this thin wrapper
(in the spirit of EDM's ``EDMPrecond``) carries the schedule and the parameterisation between them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .schedules import Schedule


@dataclass
class Denoiser:
    net: Callable[..., torch.Tensor]   # net(x_t, t) or net(x_t, t, cond) -> [N, C or 2C, H, W]
    schedule: Schedule
    prediction: str = "eps"            # what the mean channels predict: "eps" | "x0" | "v"
    variance: str = "fixed_small"      # "fixed_small" | "fixed_large" | "learned"

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None) -> torch.Tensor:
        if cond is None:
            return self.net(x_t, t)
        return self.net(x_t, t, cond)
