"""Negative log-likelihood in bits/dim: the full variational bound over all T terms plus the prior (Ho et al. eq. 5)."""
from __future__ import annotations

from typing import Any, Callable

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
        tt = torch.full((n,), t, dtype=torch.long, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device, x0.dtype)
        x_t = q_sample(s, x0, tt, noise)
        out = denoiser(x_t, tt, cond).float()
        terms[:, t] = vlb_terms_bpd(s, out, x0, x_t, tt, denoiser.prediction, denoiser.variance).double().cpu()
        if progress is not None:
            progress(1)
    prior = prior_bpd(s, x0).double().cpu()
    return {"total": terms.sum(1) + prior, "prior": prior, "terms": terms}
