"""Samplers: pure step functions and loops over a timestep (or σ) grid, sharing one progressive callback shape
{"i", "t", "x", "x0_pred"}, and ``sample``, the one dispatcher the CLI and the pipeline call."""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..denoiser import Denoiser
from .ddim import ddim_invert, ddim_invert_step, ddim_step, iterate_ddim, sample_ddim
from .ddpm import ddpm_step, iterate_ddpm, sample_ddpm
from .dpm_solver import dpmpp_2m_step, iterate_dpmpp_2m, sample_dpmpp_2m
from .grids import (SPACINGS, Spacing, as_sigmas, as_timesteps, karras_sigmas, karras_timesteps, leading_timesteps,
                    linspace_timesteps, make_sigmas, make_timesteps, previous_timesteps, randn_like, schedule_sigmas,
                    sigma_to_t, trailing_timesteps)
from .karras import (churn_step, euler_step, heun_step, iterate_euler, iterate_heun, sample_euler, sample_heun,
                     sigma_denoiser)

# name -> sample function(denoiser, x, grid, cond=, clip_x0=, generator=, callback=, ...). The grid is timesteps
# for the discrete-time samplers and σ levels for the σ-space ones (see SIGMA_SAMPLERS).
SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpmpp-2m": sample_dpmpp_2m,
    "heun": sample_heun,
    "euler": sample_euler,
}
SIGMA_SAMPLERS: tuple[str, ...] = ("heun", "euler")
# trailing (Lin et al. 2024) starts at T-1 and spends no evaluation on the nearly clean t = 0; DPM-Solver++(2M)
# extrapolates badly over linspace's last interval (t ≈ T/K → 0). EDM's grid for the σ-space samplers.
DEFAULT_SPACING: dict[str, str] = {"ddpm": "trailing", "ddim": "trailing", "dpmpp-2m": "trailing",
                                   "heun": "karras", "euler": "karras"}
_CHURN_OPTIONS = ("churn", "s_tmin", "s_tmax", "s_noise")


def sample(denoiser: Denoiser, x: torch.Tensor, sampler: str = "ddpm", steps: int | None = None, cond: Any = None,
           eta: float = 0.0, generator: torch.Generator | None = None,
           callback: Callable[[dict], None] | None = None, clip_x0: bool = True, spacing: Spacing | None = None,
           **options: float) -> torch.Tensor:
    """Generate x_0 from x = x_T with the named sampler in ``steps`` grid points (None: T) of ``spacing``
    (None: trailing for ddpm/ddim/dpmpp-2m, karras for heun/euler). ``eta`` is DDIM's η; heun and euler also take
    EDM's churn options (churn, s_tmin, s_tmax, s_noise). Network evaluations: K, but 2K - 1 for heun."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if spacing is not None and spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}: choose one of {', '.join(SPACINGS)}")
    if eta and sampler != "ddim":
        raise ValueError(f"eta applies to the ddim sampler only; drop it for {sampler}")
    unknown = [k for k in options if k not in _CHURN_OPTIONS or sampler not in SIGMA_SAMPLERS]
    if unknown:
        raise ValueError(f"{sampler} takes no option {', '.join(unknown)}; churn options are for heun and euler")
    s = denoiser.schedule
    spacing = spacing or DEFAULT_SPACING[sampler]
    count = s.num_steps if steps is None else steps
    fn = SAMPLERS[sampler]
    common = dict(cond=cond, clip_x0=clip_x0, generator=generator, callback=callback)
    if sampler in SIGMA_SAMPLERS:
        return fn(denoiser, x, as_sigmas(s, count, spacing), **common, **options)
    grid = as_timesteps(s, count, spacing)
    if sampler == "ddim":
        return fn(denoiser, x, grid, eta=eta, **common)
    return fn(denoiser, x, grid, **common)


__all__ = [
    "sample", "SAMPLERS", "SIGMA_SAMPLERS", "DEFAULT_SPACING", "SPACINGS", "Spacing",
    "ddpm_step", "iterate_ddpm", "sample_ddpm",
    "ddim_step", "iterate_ddim", "sample_ddim", "ddim_invert_step", "ddim_invert",
    "dpmpp_2m_step", "iterate_dpmpp_2m", "sample_dpmpp_2m",
    "euler_step", "heun_step", "churn_step", "sigma_denoiser", "iterate_heun", "iterate_euler", "sample_heun",
    "sample_euler",
    "as_timesteps", "as_sigmas", "make_timesteps", "make_sigmas", "previous_timesteps", "leading_timesteps",
    "trailing_timesteps", "linspace_timesteps", "karras_timesteps", "karras_sigmas", "schedule_sigmas", "sigma_to_t",
    "randn_like",
]
