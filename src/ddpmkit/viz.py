"""Pictures at the edges: sample grids, single PNGs, the loss curve."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import torch
from PIL import Image

from .checkpoint import atomic_write_bytes
from .data.images import to_uint8


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """float [-1, 1] NCHW → list of PIL images (L for one channel, RGB for three)."""
    u8 = to_uint8(images.detach().float().cpu())
    out = []
    for img in u8:
        arr = img.permute(1, 2, 0).numpy()
        out.append(Image.fromarray(arr[..., 0], "L") if arr.shape[-1] == 1 else Image.fromarray(arr, "RGB"))
    return out


def make_grid(images: list[Image.Image], nrow: int | None = None, pad: int = 2, scale: int = 1) -> Image.Image:
    """Images tiled in rows of ``nrow`` (default √n) with ``pad`` pixels of white between them."""
    n = len(images)
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol_rows = math.ceil(n / nrow)
    w, h = images[0].size
    w, h = w * scale, h * scale
    grid = Image.new(images[0].mode, (nrow * (w + pad) + pad, ncol_rows * (h + pad) + pad), 255 if images[0].mode == "L" else (255, 255, 255))
    for i, im in enumerate(images):
        r, c = divmod(i, nrow)
        grid.paste(im.resize((w, h), Image.NEAREST) if scale != 1 else im, (pad + c * (w + pad), pad + r * (h + pad)))
    return grid


def save_png(image: Image.Image, path: str | Path) -> None:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())


def plot_loss_curve(csv_path: str | Path, png_path: str | Path) -> None:
    """The training loss (and its running mean) against step, from logs/loss.csv."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses = [], []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            losses.append(float(row["loss"]))
    if not steps:
        return
    k = max(1, len(losses) // 50)
    smooth = [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1]) for i in range(len(losses))]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, losses, lw=0.5, alpha=0.4, label="loss")
    ax.plot(steps, smooth, lw=1.5, label=f"running mean ({k})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(png_path), buf.getvalue())
