"""torchvision's MNIST and CIFAR-10 read from an existing root folder. No download is ever attempted."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .images import ImageTensorDataset


def torchvision_dataset(name: str, root: str | Path | None, train: bool = True) -> ImageTensorDataset:
    from torchvision import datasets

    if root is None:
        raise UserError(f"dataset {name} needs --data-root pointing to an existing torchvision {name} folder")
    cls = {"torchvision-mnist": datasets.MNIST, "cifar10": datasets.CIFAR10}[name]
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError as e:
        raise UserError(f"{name} not found under {root} ({e}): place the torchvision files there "
                        f"(download is never attempted)") from None
    data = ds.data if isinstance(ds.data, np.ndarray) else ds.data.numpy()
    images = torch.from_numpy(np.ascontiguousarray(data))
    images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(np.asarray(ds.targets)).long()
    return ImageTensorDataset(images, labels=labels, name=f"{name}:{root}")
