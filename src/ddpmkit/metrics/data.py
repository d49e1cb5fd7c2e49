"""The embedded MNIST digits as the metrics see them: float [N, 1, 28, 28] in [-1, 1] plus int64 labels.

The npz is already shuffled; the fixed split is the first 9,000 digits for training and the last 1,000 held out.
"""
from __future__ import annotations

from importlib import resources
from typing import Literal

import numpy as np
import torch

N_TRAIN = 9000


def embedded_mnist(split: Literal["train", "test"]) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 1, 28, 28] float32 in [-1, 1], labels [N] int64) of the embedded split."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown MNIST split {split!r}; use 'train' (9,000 digits) or 'test' (1,000 held out)")
    with resources.as_file(resources.files("ddpmkit") / "data" / "mnist.npz") as path, np.load(path) as npz:
        images, labels = npz["images"], npz["labels"]
    sl = slice(0, N_TRAIN) if split == "train" else slice(N_TRAIN, None)
    x = torch.from_numpy(images[sl].astype(np.float32)).unsqueeze(1) / 127.5 - 1.0
    return x, torch.from_numpy(labels[sl].astype(np.int64))
