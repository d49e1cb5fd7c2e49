"""Samplers: pure step functions and loops over a timestep grid, sharing one progressive callback shape."""
from .ddpm import ddpm_step, iterate_ddpm, sample_ddpm
from .grids import as_timesteps, linspace_timesteps, randn_like

__all__ = ["ddpm_step", "iterate_ddpm", "sample_ddpm", "as_timesteps", "linspace_timesteps", "randn_like"]
