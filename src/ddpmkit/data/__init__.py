"""Datasets: the embedded MNIST digits, folders of images, torchvision sets from an existing root."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .images import ImageTensorDataset, image_folder, to_float, to_uint8
from .mnist import embedded_mnist, mnist_arrays

BUILTIN = ("mnist", "torchvision-mnist", "cifar10")


def load_dataset(name: str, data_root: str | None = None, image_size: int | None = None,
                 channels: int | None = None, split: str = "train") -> ImageTensorDataset:
    """``mnist`` (embedded), ``torchvision-mnist``/``cifar10`` (from ``data_root``), or a folder path."""
    if name == "mnist":
        return embedded_mnist(split)
    if name in ("torchvision-mnist", "cifar10"):
        from .torchvision_sets import torchvision_dataset
        return torchvision_dataset(name, data_root, train=(split == "train"))
    path = Path(name)
    if not path.exists() and "/" not in name and "\\" not in name and not name.startswith("."):
        raise UserError(f"unknown dataset {name!r}: choose {', '.join(BUILTIN)} or give a folder of images")
    return image_folder(path, size=image_size or 32, channels=channels or 3)


__all__ = ["ImageTensorDataset", "image_folder", "load_dataset", "embedded_mnist", "mnist_arrays",
           "to_float", "to_uint8", "BUILTIN"]
