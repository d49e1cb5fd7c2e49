"""Image datasets held in memory as uint8 NCHW, served as float in [-1, 1]; folders of images on disk."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class ImageTensorDataset:
    """uint8 images [N, C, H, W] (+ optional labels/captions). ``batch(idx)`` gives float [-1, 1].

    ``captions[i]`` lists the captions of image i (alternative phrasings; a training step picks one); ``""`` means
    "no caption" (trained as the null prompt)."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    captions: list[list[str]] | None = None
    name: str = "images"
    skipped: dict[str, str] = field(default_factory=dict)   # file -> reason, for folders

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        return to_float(self.images[idx])


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float [-1, 1]."""
    return images_u8.float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255], rounding to the nearest level."""
    return ((images.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as uint8 [C, size, size]: transparency composited on white, resized so the short side is
    ``size`` (bicubic, antialiased), centre-cropped; grayscale or RGB as asked."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im)
        im = im.convert("L" if channels == 1 else "RGB")
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.BICUBIC, reducing_gap=None)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def image_folder(path: str | Path, size: int = 32, channels: int = 3) -> ImageTensorDataset:
    """Every readable image under ``path`` (recursively), loaded once into memory.

    Files that are not images or cannot be decoded are skipped and reported in ``.skipped``; a folder with no
    readable image is a UserError that says how many files were skipped and why.
    """
    root = Path(path)
    if not root.exists():
        raise UserError(f"dataset folder {root} does not exist: pass an existing folder of images, or mnist/shapes")
    if not root.is_dir():
        raise UserError(f"dataset {root} is not a folder: pass a folder of images, or mnist/shapes")
    if channels not in (1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    arrays, names, skipped = [], [], {}
    for f in files:
        rel = str(f.relative_to(root))
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            if f.suffix.lower() not in {".txt", ".jsonl", ".json", ".csv"}:   # caption/metadata files are expected
                skipped[rel] = f"not an image file ({f.suffix or 'no suffix'})"
            continue
        try:
            arrays.append(load_image(f, size, channels))
            names.append(rel)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            skipped[rel] = f"unreadable ({type(e).__name__})"
    if not arrays:
        reasons = _summarise(skipped)
        raise UserError(f"no readable image in {root}: {len(skipped)} file(s) skipped{reasons}; "
                        f"add .png/.jpg images to the folder")
    from .captions import read_captions
    found = read_captions(root)
    captions = [[found.get(Path(n).as_posix(), "")] for n in names] if found else None
    ds = ImageTensorDataset(torch.from_numpy(np.stack(arrays)), captions=captions, name=str(root), skipped=skipped)
    ds.files = names  # type: ignore[attr-defined]
    return ds


def _summarise(skipped: dict[str, str]) -> str:
    if not skipped:
        return ""
    counts: dict[str, int] = {}
    for reason in skipped.values():
        counts[reason] = counts.get(reason, 0) + 1
    return " (" + ", ".join(f"{n} {r}" for r, n in sorted(counts.items())) + ")"
