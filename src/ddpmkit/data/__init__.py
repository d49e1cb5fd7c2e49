"""Datasets: the embedded MNIST digits, folders of images, torchvision sets from an existing root."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .images import ImageTensorDataset, image_folder, to_float, to_uint8
from .mnist import embedded_mnist, mnist_arrays

BUILTIN = ("mnist", "shapes", "torchvision-mnist", "cifar10")
SHAPES_POOL = 20000          # shapes scenes rendered once per run (the stream is unbounded; a pool keeps steps fast)
SHAPES_CAPTIONS = 1          # phrasings per training scene (training draws one per step); >1 is paraphrase augmentation
SHAPES_P_PAIR = 0.5          # two-object share of the training pool (evaluation scenes: 0.5)


def load_dataset(name: str, data_root: str | None = None, image_size: int | None = None,
                 channels: int | None = None, split: str = "train", shapes_captions: int = SHAPES_CAPTIONS,
                 shapes_pairs: float = SHAPES_P_PAIR, shapes_reversed: float = 0.5,
                 shapes_vocabulary: str = "base") -> ImageTensorDataset:
    """``mnist`` (embedded), ``shapes`` (procedural; ``shapes_captions`` phrasings per training scene, a
    ``shapes_pairs`` share of two-object scenes, ``shapes_reversed`` of those named right/lower object first,
    paraphrases in ``shapes_vocabulary``),
    ``torchvision-mnist``/``cifar10`` (from ``data_root``), or a folder."""
    if name == "mnist":
        return embedded_mnist(split)
    if name == "shapes":
        if split == "train":
            return shapes_pool(SHAPES_POOL, seed=0, captions_per_scene=shapes_captions, p_pair=shapes_pairs,
                               p_reversed=shapes_reversed, vocabulary=shapes_vocabulary)
        return shapes_pool(1000, seed=1, captions_per_scene=1)
    if name in ("torchvision-mnist", "cifar10"):
        from .torchvision_sets import torchvision_dataset
        return torchvision_dataset(name, data_root, train=(split == "train"))
    path = Path(name)
    if not path.exists() and "/" not in name and "\\" not in name and not name.startswith("."):
        raise UserError(f"unknown dataset {name!r}: choose {', '.join(BUILTIN)} or give a folder of images")
    return image_folder(path, size=image_size or 32, channels=channels or 3)


def shapes_pool(n: int, seed: int = 0, captions_per_scene: int = SHAPES_CAPTIONS,
                p_pair: float = 0.5, p_reversed: float = 0.5, vocabulary: str = "base") -> ImageTensorDataset:
    """``n`` procedural shapes scenes (32×32 RGB), rendered once, each with ``captions_per_scene`` phrasings
    (``ShapesDataset.captions``); deterministic by seed."""
    import numpy as np
    import torch

    from ..shapes import ShapesDataset
    ds = ShapesDataset(seed=seed, image_format="uint8", p_pair=p_pair, p_reversed=p_reversed, vocabulary=vocabulary)
    items = [ds[i] for i in range(n)]
    images = torch.from_numpy(np.stack([im for im, _, _ in items])).permute(0, 3, 1, 2).contiguous()
    captions = [ds.captions(i, captions_per_scene) for i in range(n)]
    out = ImageTensorDataset(images, captions=captions, name=f"shapes-{seed}")
    out.scene_labels = [lab for _, _, lab in items]  # type: ignore[attr-defined]
    return out


__all__ = ["ImageTensorDataset", "image_folder", "load_dataset", "embedded_mnist", "mnist_arrays",
           "to_float", "to_uint8", "BUILTIN"]
