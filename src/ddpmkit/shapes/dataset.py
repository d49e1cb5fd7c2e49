"""``ShapesDataset``: an unbounded, deterministic stream of captioned shape scenes.

Item ``i`` depends only on ``(seed, i)`` (its own ``numpy`` Generator), so any index can be read in any order, by
any number of workers, and always gives the same scene, caption and label.
"""
from __future__ import annotations

from typing import Iterator, Literal

import numpy as np
import torch

from .captions import caption, paraphrase_words
from .scene import render, sample_scene


class ShapesDataset:
    """``ds[i] -> (image, caption, label)``; image is float CHW in [-1, 1] (``image_format="float"``, the library's
    convention) or uint8 HWC (``"uint8"``). ``length=None`` is unbounded (indexable by any int ≥ 0, no ``len``)."""

    def __init__(self, seed: int = 0, length: int | None = None, *,
                 image_format: Literal["float", "uint8"] = "float",
                 p_pair: float = 0.5,          # share of two-object scenes
                 p_reversed: float = 0.5,      # share of those named right / lower object first ("right of", "below")
                 p_size: float = 0.5,          # share of captions naming the sizes
                 held_out: bool | int = False,  # True (or 1) to 8: captions in that held-out set (evaluation only)
                 vocabulary: str = "base"):     # the extra captions' wordings: base (PARAPHRASE) or wide (WIDE)
        if image_format not in ("float", "uint8"):
            raise ValueError(f"image_format must be 'float' or 'uint8', not {image_format!r}")
        if length is not None and length < 0:
            raise ValueError(f"length must be None (unbounded) or >= 0, not {length}")
        self.seed, self.length, self.image_format = int(seed), length, image_format
        paraphrase_words(vocabulary)   # an unknown name fails here, not at the first caption
        self.p_pair, self.p_reversed, self.p_size, self.held_out = p_pair, p_reversed, p_size, held_out
        self.vocabulary = vocabulary

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("this ShapesDataset is unbounded: pass length=N for a sized one, or index it directly")
        return self.length

    def label(self, index: int) -> tuple[dict, str]:
        """The scene label and caption of item ``index`` without rendering."""
        rng = np.random.default_rng([self.seed, index])
        label = sample_scene(rng, self.p_pair, self.p_reversed)
        return label, caption(label, rng, held_out=self.held_out, p_size=self.p_size)

    def captions(self, index: int, k: int) -> list[str]:
        """``k`` captions of item ``index``: its own (``label(index)``) and ``k - 1`` paraphrases of the same scene
        (the ``vocabulary``'s wordings; held-out ones for a held-out stream), drawn from their own generator so the
        item's image, label and first caption do not change with ``k``."""
        label, first = self.label(index)
        rng = np.random.default_rng([self.seed, index, 1])
        return [first] + [caption(label, rng, held_out=self.held_out, p_size=self.p_size,
                                  paraphrase=False if self.held_out else self.vocabulary) for _ in range(k - 1)]

    def __getitem__(self, index: int):
        index = int(index)
        if index < 0 or (self.length is not None and index >= self.length):
            raise IndexError(f"index {index} out of range for a ShapesDataset of length {self.length}")
        label, text = self.label(index)
        image = render(label)
        if self.image_format == "float":
            image = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0
        return image, text, label

    def __iter__(self) -> Iterator:
        i = 0
        while self.length is None or i < self.length:
            yield self[i]
            i += 1

    def batch(self, start: int, n: int) -> tuple[torch.Tensor, list[str], list[dict]]:
        """Items ``start .. start+n-1`` stacked: float [n, 3, 32, 32] in [-1, 1], captions, labels."""
        items = [self[i] for i in range(start, start + n)]
        images = [torch.as_tensor(x) for x, _, _ in items]
        if self.image_format == "uint8":
            images = [x.permute(2, 0, 1).float() / 127.5 - 1.0 for x in images]
        return torch.stack(images), [t for _, t, _ in items], [lab for _, _, lab in items]
