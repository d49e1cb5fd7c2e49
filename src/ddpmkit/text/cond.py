"""``TextCond``: what a text encoder hands the denoiser, plus the batching helpers guidance needs.

Layout: token states are right-padded (real tokens first), padded positions hold zeros and ``mask`` False there.
``is_null`` marks the empty prompt ``""`` (unconditional): its tokens are the encoder's real output for ``""``,
and a network with a learned null embedding substitutes that embedding wherever ``is_null`` is True.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch


class TextCond(NamedTuple):
    tokens: torch.Tensor    # [B, L, D] float, token states of the encoder's last layer
    mask: torch.Tensor      # [B, L] bool, True = real token
    pooled: torch.Tensor    # [B, P] float, the encoder's own sentence vector
    is_null: torch.Tensor   # [B] bool, True = empty prompt (unconditional)

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def length(self) -> int:
        return self.tokens.shape[1]

    def pad_to(self, length: int) -> "TextCond":
        """Right-pad (zeros, mask False) or trim trailing padding to exactly ``length`` tokens.

        Trimming never drops a real token: asking for fewer positions than the longest prompt uses raises ValueError.
        """
        length = int(length)
        cur = self.length
        if length == cur:
            return self
        if length < cur:
            if bool(self.mask[:, length:].any()):
                need = int(self.mask.sum(dim=1).max())
                raise ValueError(f"cannot pad_to({length}): a prompt has {need} real tokens; use a length >= {need}")
            return self._replace(tokens=self.tokens[:, :length], mask=self.mask[:, :length])
        b, _, d = self.tokens.shape
        tokens = torch.cat([self.tokens, self.tokens.new_zeros(b, length - cur, d)], dim=1)
        mask = torch.cat([self.mask, self.mask.new_zeros(b, length - cur)], dim=1)
        return self._replace(tokens=tokens, mask=mask)

    def index(self, idx) -> "TextCond":
        """Select batch rows (int, slice, index tensor or bool mask); an int keeps the batch dimension."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        return TextCond(self.tokens[idx], self.mask[idx], self.pooled[idx], self.is_null[idx])

    def repeat(self, n: int) -> "TextCond":
        """Each row repeated ``n`` times in place (row0, row0, …, row1, …): n samples per prompt."""
        return TextCond(*(t.repeat_interleave(n, dim=0) for t in self))

    def to(self, device=None, dtype: torch.dtype | None = None) -> "TextCond":
        """Move to ``device``; ``dtype`` applies to the float fields only."""
        return TextCond(self.tokens.to(device=device, dtype=dtype), self.mask.to(device),
                        self.pooled.to(device=device, dtype=dtype), self.is_null.to(device))

    @staticmethod
    def cat(conds: Sequence["TextCond"]) -> "TextCond":
        """Concatenate along the batch, padding every part to the longest token length first."""
        conds = list(conds)
        if not conds:
            raise ValueError("TextCond.cat needs at least one TextCond")
        length = max(c.length for c in conds)
        conds = [c.pad_to(length) for c in conds]
        return TextCond(*(torch.cat(parts, dim=0) for parts in zip(*conds)))


def collate(conds: Sequence[TextCond]) -> TextCond:
    """Batch conds of different token lengths (a DataLoader ``collate_fn`` helper); same as ``TextCond.cat``."""
    return TextCond.cat(conds)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real token states (sentence-transformers' mean pooling): ``[B, L, D], [B, L] -> [B, D]``.

    Padded positions are excluded whatever they hold.
    """
    m = mask.to(tokens.dtype).unsqueeze(-1)
    summed = torch.where(mask.unsqueeze(-1), tokens, torch.zeros_like(tokens)).sum(dim=1)
    return summed / m.sum(dim=1).clamp_min(1.0)
