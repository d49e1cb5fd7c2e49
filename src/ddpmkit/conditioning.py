"""Captions at training time: every distinct caption encoded once, then drawn per step by index."""
from __future__ import annotations

from functools import cached_property

import torch

from .errors import UserError


class CaptionBank:
    """The encoded captions of a dataset. ``captions[i]`` lists the alternatives of image i; ``draw`` picks one per
    image with the given generator and returns their TextCond, so no encoder runs inside the training loop."""

    def __init__(self, encoder, captions: list[list[str]]):
        if not captions or any(len(a) == 0 for a in captions):
            raise UserError("every image needs at least one caption (use \"\" for none)")
        unique = sorted({c for alts in captions for c in alts})
        index = {c: i for i, c in enumerate(unique)}
        self.cond = encoder(unique).to("cpu")
        width = max(len(a) for a in captions)
        self.alternatives = torch.zeros(len(captions), width, dtype=torch.long)
        self.counts = torch.tensor([len(a) for a in captions], dtype=torch.long)
        for i, alts in enumerate(captions):
            self.alternatives[i, :len(alts)] = torch.tensor([index[c] for c in alts])
        self.num_unique = len(unique)

    # Each feature's std over every real token state, and over the pooled vectors, of the bank's captions: computed
    # on the first noisy draw only (the real tokens of a big bank are a large copy).
    @cached_property
    def token_std(self) -> torch.Tensor:
        real = self.cond.tokens[self.cond.mask]
        return real.std(0) if len(real) > 1 else torch.zeros(real.shape[-1])

    @cached_property
    def pooled_std(self) -> torch.Tensor:
        return self.cond.pooled.std(0) if self.num_unique > 1 else torch.zeros(self.cond.pooled.shape[-1])

    def draw(self, idx: torch.Tensor, generator: torch.Generator, dropout: float = 0.0, first_only: bool = False,
             noise: float = 0.0, token_dropout: float = 0.0):
        """Captions for images ``idx`` (each image's first caption only with ``first_only``); each is replaced by the
        null prompt with probability ``dropout``. The generator advances the same way either way (and by the noise
        draws when ``noise`` > 0). ``noise``: conditioning augmentation, Gaussian noise of ``noise`` × each feature's
        std over the bank added to the real token states and the pooled vector (padding stays zero).
        ``token_dropout``: each real token but the first is hidden (mask False) with that probability, so the U-Net
        cannot lean on one word's token alone; the pooled vector is left whole (drawn after the noise)."""
        pick = (torch.rand(len(idx), generator=generator) * self.counts[idx]).long()
        if first_only:
            pick = torch.zeros_like(pick)
        cond = self.cond.index(self.alternatives[idx, pick])
        drop = torch.rand(len(idx), generator=generator) < dropout
        cond = cond._replace(is_null=cond.is_null | drop)
        if noise > 0:
            tokens = cond.tokens + noise * self.token_std * torch.randn(cond.tokens.shape, generator=generator)
            pooled = cond.pooled + noise * self.pooled_std * torch.randn(cond.pooled.shape, generator=generator)
            cond = cond._replace(tokens=torch.where(cond.mask[..., None], tokens, cond.tokens), pooled=pooled)
        if token_dropout > 0:
            hide = torch.rand(cond.mask.shape, generator=generator) < token_dropout
            hide[:, 0] = False
            cond = cond._replace(mask=cond.mask & ~hide)
        return cond
