"""The ancestral sampler of Ho et al. (2020), Algorithm 2, as a pure step function and a progressive loop."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from ..denoiser import Denoiser
from ..diffusion import p_mean_variance
from ..schedules import Schedule
from .grids import as_timesteps, consume, randn_like


def ddpm_step(s: Schedule, model_output: torch.Tensor, t, x_t: torch.Tensor, noise: torch.Tensor | None,
              t_prev=None, prediction: str = "eps", variance: str = "fixed_small",
              clip_x0: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One reverse step x_t → x_{t_prev} (default t - 1): x_prev = μ_θ + σ z, with no noise when t_prev < 0.

    Pure: the noise z is passed in. Returns (x_prev, x̂_0).
    """
    p = p_mean_variance(s, model_output, x_t, t, t_prev, prediction, variance, clip_x0)
    if noise is None:
        return p.mean, p.x0_pred
    n = x_t.shape[0]
    t_tensor = torch.as_tensor(t).long().expand(n) if not torch.is_tensor(t) or t.ndim == 0 else t.long()
    if t_prev is None:
        prev = t_tensor - 1
    else:
        prev = torch.as_tensor(t_prev).long().expand(n) if not torch.is_tensor(t_prev) or t_prev.ndim == 0 \
            else t_prev.long()
    nonzero = (prev >= 0).to(x_t.dtype).to(x_t.device).reshape(-1, *([1] * (x_t.ndim - 1)))
    return p.mean + nonzero * torch.exp(0.5 * p.log_variance) * noise, p.x0_pred


def iterate_ddpm(denoiser: Denoiser, x: torch.Tensor, timesteps=None, cond: Any = None, clip_x0: bool = True,
                 generator: torch.Generator | None = None) -> Iterator[dict]:
    """The progressive path (Ho et al. Figure 6): yields {"i", "t", "x", "x0_pred"} after every step."""
    ts = as_timesteps(denoiser.schedule, timesteps)
    for i, t in enumerate(ts.tolist()):
        t_prev = ts[i + 1].item() if i + 1 < len(ts) else -1
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        with torch.no_grad():
            out = denoiser(x, tt, cond)
        noise = randn_like(x, generator) if t_prev >= 0 else None
        x, x0 = ddpm_step(denoiser.schedule, out.float(), tt, x, noise, t_prev=t_prev,
                          prediction=denoiser.prediction, variance=denoiser.variance, clip_x0=clip_x0)
        yield {"i": i, "t": t, "x": x, "x0_pred": x0}


def sample_ddpm(denoiser: Denoiser, x: torch.Tensor, timesteps=None, cond: Any = None, clip_x0: bool = True,
                generator: torch.Generator | None = None,
                callback: Callable[[dict], None] | None = None) -> torch.Tensor:
    """Run the ancestral sampler from x = x_T over ``timesteps`` (descending; default all T). Returns x_0."""
    return consume(iterate_ddpm(denoiser, x, timesteps, cond, clip_x0, generator), callback)
