"""Negative log-likelihood in bits/dim: the variational bound over all T terms plus the prior (Ho et al. eq. 5),
computed in full (``bits_per_dim``, one network evaluation per timestep) or estimated without bias from a few
importance-sampled timesteps per image (``bits_per_dim_importance``; the sampling of Nichol & Dhariwal 2021, eq. 18,
applied to evaluation)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .denoiser import Denoiser
from .diffusion import prior_bpd, q_sample, vlb_terms_bpd


@torch.no_grad()
def bits_per_dim(denoiser: Denoiser, x0: torch.Tensor, cond: Any = None, generator: torch.Generator | None = None,
                 progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """The bound for each image of x0 (in [-1, 1], on the 256-level grid), bits/dim.

    Returns {"total": [N], "prior": [N], "terms": [N, T]} where terms[:, t] is L_t (t = 0 the decoder).
    One network evaluation per timestep per image; x_t is drawn fresh for every t.
    """
    s = denoiser.schedule
    n = x0.shape[0]
    terms = torch.zeros(n, s.num_steps, dtype=torch.float64)
    for t in range(s.num_steps - 1, -1, -1):
        terms[:, t] = vlb_term(denoiser, x0, torch.full((n,), t, dtype=torch.long), cond, generator)
        if progress is not None:
            progress(1)
    prior = prior_bpd(s, x0).double().cpu()
    return {"total": terms.sum(1) + prior, "prior": prior, "terms": terms}


@torch.no_grad()
def vlb_term(denoiser: Denoiser, x0: torch.Tensor, t: torch.Tensor, cond: Any = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """L_t in bits/dim for each image of x0 at its own timestep t [N] (CPU float64), from one fresh draw of x_t."""
    s = denoiser.schedule
    tt = t.to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device, x0.dtype)
    x_t = q_sample(s, x0, tt, noise)
    out = denoiser(x_t, tt, cond).float()
    return vlb_terms_bpd(s, out, x0, x_t, tt, denoiser.prediction, denoiser.variance).double().cpu()


@torch.no_grad()
def vlb_proposal(denoiser: Denoiser, x0: torch.Tensor, cond: Any = None, grid: int = 64, floor: float = 0.1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """An importance distribution p [T] over the KL terms t = 1 … T−1 (p[0] = 0: the decoder is computed exactly).

    p_t ∝ √E[L_t²] (the variance-minimising choice for one draw; Nichol & Dhariwal eq. 18), with E over the pilot
    images x0, measured at ``grid`` timesteps spaced geometrically from 1 to T−1 (the terms change fastest near
    t = 0) and interpolated linearly in between; mixed with the uniform distribution at weight ``floor`` so every
    term keeps a chance and the estimator's variance stays bounded if the pilot missed a bump.
    """
    if not 0 < floor <= 1:
        raise ValueError(f"floor must be in (0, 1], got {floor}")
    T = denoiser.schedule.num_steps
    if T < 2:
        raise ValueError("a schedule with one step has no KL terms to sample")
    points = torch.from_numpy(np.unique(np.geomspace(1, T - 1, min(grid, T - 1)).round().astype(np.int64)))
    rms = torch.stack([vlb_term(denoiser, x0, torch.full((x0.shape[0],), int(t)), cond, generator)
                       .square().mean().sqrt() for t in points])
    ts = torch.arange(1, T, dtype=torch.float64)
    q = torch.from_numpy(np.interp(ts.numpy(), points.double().numpy(), rms.numpy()))
    q = q / q.sum() if q.sum() > 0 else torch.full_like(q, 1.0 / (T - 1))
    p = torch.zeros(T, dtype=torch.float64)
    p[1:] = (1 - floor) * q + floor / (T - 1)
    return p


@torch.no_grad()
def bits_per_dim_importance(denoiser: Denoiser, x0: torch.Tensor, proposal: torch.Tensor, timesteps: int = 50,
                            cond: Any = None, generator: torch.Generator | None = None,
                            progress: Callable[[int], None] | None = None) -> dict[str, torch.Tensor]:
    """An unbiased estimate of ``bits_per_dim(...)["total"]`` for each image from ``timesteps`` + 1 evaluations.

    The prior and the decoder term L_0 are computed as in the full bound; Σ_{t≥1} L_t is estimated by systematic
    sampling from ``proposal`` (``vlb_proposal``): image i draws one offset u_i ~ U(0, 1) and visits
    t_k = F⁻¹((k + u_i) / K), k = 0 … K−1, each term weighted 1 / (K p_{t_k}). Each t_k is marginally a draw from p
    with the K draws spread over its quantiles, so the estimate is unbiased and varies less than K independent
    draws; a proposal proportional to the terms themselves would make it exact.

    Returns {"total": [N], "prior": [N], "decoder": [N], "kl_sum": [N]}; the spread of "total" over images is the
    per-image bound's spread plus the sampling noise, so its standard error covers both.
    """
    T = denoiser.schedule.num_steps
    if proposal.shape != (T,) or proposal[0] != 0 or (proposal[1:] <= 0).any():
        raise ValueError(f"proposal must be [T = {T}] with p[0] = 0 and every p[t >= 1] > 0: "
                         "build it with vlb_proposal")
    if timesteps < 1:
        raise ValueError(f"timesteps must be at least 1, got {timesteps}")
    n = x0.shape[0]
    p = proposal.double() / proposal.sum()
    cdf = torch.cumsum(p, 0)
    cdf[-1] = 1.0
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    kl = torch.zeros(n, dtype=torch.float64)
    for k in range(timesteps):
        t = torch.searchsorted(cdf, (k + u) / timesteps).clamp(1, T - 1)
        kl += vlb_term(denoiser, x0, t, cond, generator) / (timesteps * p[t])
        if progress is not None:
            progress(1)
    decoder = vlb_term(denoiser, x0, torch.zeros(n, dtype=torch.long), cond, generator)
    if progress is not None:
        progress(1)
    prior = prior_bpd(denoiser.schedule, x0).double().cpu()
    return {"total": kl + decoder + prior, "prior": prior, "decoder": decoder, "kl_sum": kl}
