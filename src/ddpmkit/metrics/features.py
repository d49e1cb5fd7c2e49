"""Feature networks for the metrics and the cached reference features of the embedded datasets.

Two feature spaces:
  "mnist"     — the shipped MNIST classifier's penultimate layer (128-d); offline, the project's own benchmarks use it.
  "inception" — Inception-v3 pool3 (2048-d) from a local 2015-12-05 weights file; the number papers report.

Reference features of "mnist-test" (the 1,000 held-out digits) and "mnist-train" (the 9,000 training digits) are computed
once per feature network and cached with their mean and covariance in ``cache_dir()`` (never inside the package).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from . import inception
from .classifier import shipped_classifier, shipped_weights_path
from .data import embedded_mnist
from .frechet import gaussian_stats

FeatureName = Literal["mnist", "inception"]
REFERENCES = {"mnist-test": "test", "mnist-train": "train"}   # name -> embedded MNIST split
CACHE_VERSION = 1


def check_images(images: torch.Tensor) -> torch.Tensor:
    """Images as float NCHW in [-1, 1] with 1 or 3 channels, else ValueError in one line."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor [N, 1 or 3, H, W] in [-1, 1], got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"images must be float in [-1, 1], got {images.dtype}; convert uint8 with x / 127.5 - 1")
    if images.numel() and (images.min() < -1.001 or images.max() > 1.001):
        raise ValueError(f"images must lie in [-1, 1], got [{images.min():.3g}, {images.max():.3g}]; "
                         "map [0, 1] data with 2x - 1")
    return images


@torch.no_grad()
def domain_features(images: torch.Tensor, batch_size: int = 500, device: str | torch.device = "cpu") -> torch.Tensor:
    """MNIST-classifier features [N, 128] (float32, CPU) of images [N, 1 or 3, H, W] in [-1, 1].

    RGB is averaged to gray; sizes other than 28×28 are resized (bilinear, antialiased) to 28×28.
    """
    images = check_images(images)
    net = shipped_classifier(device)
    out = []
    for chunk in images.split(batch_size):
        chunk = chunk.float().to(device)
        if chunk.shape[1] == 3:
            chunk = chunk.mean(dim=1, keepdim=True)
        if chunk.shape[-2:] != (28, 28):
            chunk = F.interpolate(chunk, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
        out.append(net.features(chunk).cpu())
    return torch.cat(out) if out else torch.empty(0, net.num_features)


def extract_features(images: torch.Tensor, feature: FeatureName = "mnist", inception_weights: str | Path | None = None,
                     batch_size: int | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """Features [N, D] of images in [-1, 1] from the named network."""
    if feature == "mnist":
        return domain_features(images, batch_size or 500, device)
    if feature == "inception":
        return inception.inception_features(check_images(images), inception_weights, batch_size or 64, device)
    raise ValueError(f"unknown feature network {feature!r}; use 'mnist' or 'inception'")


def cache_dir() -> Path:
    """$DDPMKIT_CACHE_DIR, else $XDG_CACHE_HOME/ddpmkit, else ~/.cache/ddpmkit."""
    if os.environ.get("DDPMKIT_CACHE_DIR"):
        return Path(os.environ["DDPMKIT_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ddpmkit"


def feature_fingerprint(feature: FeatureName, inception_weights: str | Path | None = None) -> str:
    """Short SHA-256 of the feature network's weights file: reference caches are keyed on it."""
    if feature == "mnist":
        return inception.file_sha256(shipped_weights_path())[:12]
    if feature == "inception":
        return inception.file_sha256(inception.check_weights_path(inception_weights))[:12]
    raise ValueError(f"unknown feature network {feature!r}; use 'mnist' or 'inception'")


def reference_features(name: str = "mnist-test", feature: FeatureName = "mnist",
                       inception_weights: str | Path | None = None, cache: str | Path | None = None,
                       device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """{"features" [N, D], "mu" [D], "sigma" [D, D]} of an embedded reference set, computed once and cached.

    ``cache`` is the cache folder (default ``cache_dir()``); the file name carries the weights' fingerprint, so new
    weights never reuse stale features.
    """
    if name not in REFERENCES:
        raise ValueError(f"unknown reference {name!r}; use one of {', '.join(REFERENCES)} or pass a tensor of images")
    folder = Path(cache).expanduser() if cache is not None else cache_dir()
    path = folder / "metrics" / f"{name}-{feature}-{feature_fingerprint(feature, inception_weights)}-v{CACHE_VERSION}.safetensors"
    if path.is_file():
        return load_file(str(path))
    images, _ = embedded_mnist(REFERENCES[name])
    feats = extract_features(images, feature, inception_weights, device=device)
    mu, sigma = gaussian_stats(feats)
    stats = {"features": feats.contiguous(), "mu": mu, "sigma": sigma}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(stats, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return stats
