"""Datasets: the embedded digits, image folders, and torchvision's MNIST read from an existing root (no download)."""
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from ddpmkit.data import load_dataset, mnist_arrays
from ddpmkit.errors import UserError


def test_embedded_mnist_split_is_fixed_and_real():
    train, test = load_dataset("mnist"), load_dataset("mnist", split="test")
    assert len(train) == 9000 and len(test) == 1000 and train.shape == (1, 28, 28)
    assert np.bincount(mnist_arrays("all")[1], minlength=10).min() > 800      # every digit well represented
    x = train.batch(torch.arange(4))
    assert x.min() >= -1 and x.max() <= 1 and x.dtype == torch.float32
    assert "8" in train.captions[0][0] or "eight" in train.captions[0][0]      # label 8 → its phrasings


def _idx(path, array, magic):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_torchvision_mnist_from_an_existing_root(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images, labels = mnist_arrays("test")
    for split, (im, lab) in {"train": (images[:20], labels[:20]), "t10k": (images[20:30], labels[20:30])}.items():
        _idx(raw / f"{split}-images-idx3-ubyte", im, 0x803)
        _idx(raw / f"{split}-labels-idx1-ubyte", lab, 0x801)
    ds = load_dataset("torchvision-mnist", data_root=str(tmp_path))
    assert len(ds) == 20 and ds.shape == (1, 28, 28)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images[:20]))
    assert torch.equal(ds.labels, torch.from_numpy(labels[:20]).long())
    assert len(load_dataset("torchvision-mnist", data_root=str(tmp_path), split="test")) == 10


def test_torchvision_sets_never_download(tmp_path):
    for name in ("torchvision-mnist", "cifar10"):
        with pytest.raises(UserError, match="download is never attempted"):
            load_dataset(name, data_root=str(tmp_path / "empty"))
        with pytest.raises(UserError, match="--data-root"):
            load_dataset(name)


def test_image_folder_resizes_crops_and_converts(tmp_path):
    Image.new("RGBA", (64, 40), (255, 0, 0, 0)).save(tmp_path / "transparent.png")      # fully transparent → white
    Image.new("L", (20, 50), 0).save(tmp_path / "gray.jpg")
    (tmp_path / "a.txt").write_text("a caption for nothing")                          # sidecar files are not images
    ds = load_dataset(str(tmp_path), image_size=16, channels=3)
    assert len(ds) == 2 and ds.shape == (3, 16, 16) and ds.skipped == {}
    by_name = dict(zip(ds.files, ds.images))
    assert by_name["transparent.png"].min() == 255 and by_name["gray.jpg"].max() == 0
    gray = load_dataset(str(tmp_path), image_size=8, channels=1)
    assert gray.shape == (1, 8, 8)


def test_folder_captions_from_metadata(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "y.png")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "x.png", "text": "a black square"}\n')
    ds = load_dataset(str(tmp_path), image_size=8)
    assert dict(zip(ds.files, ds.captions)) == {"x.png": ["a black square"], "y.png": [""]}
