"""Captions at training time: every distinct caption encoded once, then drawn per step by index."""
from __future__ import annotations

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
        self.cond = encoder(unique)
        width = max(len(a) for a in captions)
        self.alternatives = torch.zeros(len(captions), width, dtype=torch.long)
        self.counts = torch.tensor([len(a) for a in captions], dtype=torch.long)
        for i, alts in enumerate(captions):
            self.alternatives[i, :len(alts)] = torch.tensor([index[c] for c in alts])
        self.num_unique = len(unique)

    def draw(self, idx: torch.Tensor, generator: torch.Generator, dropout: float = 0.0, first_only: bool = False):
        """Captions for images ``idx`` (each image's first caption only with ``first_only``); each is replaced by the
        null prompt with probability ``dropout``. The generator advances the same way either way."""
        pick = (torch.rand(len(idx), generator=generator) * self.counts[idx]).long()
        if first_only:
            pick = torch.zeros_like(pick)
        cond = self.cond.index(self.alternatives[idx, pick])
        drop = torch.rand(len(idx), generator=generator) < dropout
        return cond._replace(is_null=cond.is_null | drop)
