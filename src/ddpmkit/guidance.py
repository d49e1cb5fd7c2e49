"""Classifier-free guidance (Ho & Salimans 2022) as a denoiser wrapper, so every sampler gets it for free.

ε̃ = ε_u + w·(ε_c − ε_u), computed as (1 − w)·ε_u + w·ε_c so that w = 0 gives the unconditional output and w = 1
the conditional output exactly. Both branches run in one batched forward pass. Only the prediction channels are
guided; learned-variance channels pass through from the conditional branch.
"""
from __future__ import annotations

from typing import Any

import torch

from .denoiser import Denoiser


def guided(denoiser: Denoiser, scale: float, uncond: Any) -> Denoiser:
    """A Denoiser that, called with (x_t, t, cond), returns the guided output for ``cond`` against ``uncond``
    (the null prompt, or a negative prompt). ``cond`` and ``uncond`` are TextConds of the same batch size."""
    from .text import TextCond

    def net(x_t: torch.Tensor, t: torch.Tensor, cond: Any = None) -> torch.Tensor:
        c = x_t.shape[1]
        if scale == 1.0:
            return denoiser(x_t, t, cond)
        if scale == 0.0:
            return denoiser(x_t, t, uncond)
        both = TextCond.cat([cond, uncond])      # pads both to one token length
        out = denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]), both)
        out_c, out_u = out.chunk(2)
        pred = (1.0 - scale) * out_u[:, :c] + scale * out_c[:, :c]
        return torch.cat([pred, out_c[:, c:]], dim=1)

    return Denoiser(net, denoiser.schedule, denoiser.prediction, denoiser.variance)


def null_like(cond: Any) -> Any:
    """The null prompt for every row of ``cond``: same shapes, ``is_null`` all True."""
    return cond._replace(is_null=torch.ones_like(cond.is_null))
