"""The standard FID network: Inception-v3 with the 2015-12-05 TensorFlow weights, pool3 (2048-d) features.

The network and its resize (TensorFlow-1 compatible bilinear to 299×299, no antialiasing, as the original FID code) come
from torch-fidelity, the implementation torchmetrics also wraps. The weights are always a local file: nothing is downloaded.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import torch

# torch-fidelity names the file weights-inception-2015-12-05-6726825d.pth, pytorch-fid pt_inception-2015-12-05-6726825d.pth;
# the hex is the start of its SHA-256, as torch.hub names files.
STANDARD_SHA256_PREFIX = "6726825d"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048


class InceptionWeightsError(ValueError):
    """The Inception-v3 weights file is missing or unreadable (the message says how to fix it)."""


def _how_to_get() -> str:
    return (f"download pt_inception-2015-12-05-6726825d.pth (the file torch-fidelity and torchmetrics use) from {WEIGHTS_URL} "
            "and pass its path as inception_weights=PATH (CLI: --inception-weights PATH); no download is attempted")


def check_weights_path(path: str | Path | None) -> Path:
    """The path as a Path, or InceptionWeightsError in one line if it is not given or not a file."""
    if path is None:
        raise InceptionWeightsError(f"Inception FID needs a local Inception-v3 weights file: {_how_to_get()}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise InceptionWeightsError(f"Inception-v3 weights file not found: {p}; {_how_to_get()}")
    return p


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, remembered while its path, size and mtime stay the same."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256(str(p), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_state_dict_file(path: str | Path) -> None:
    """InceptionWeightsError unless the file is a torch.save'd dict of tensors (zip or legacy format)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InceptionWeightsError(f"{path} is not a PyTorch state dict ({type(e).__name__}); {_how_to_get()}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InceptionWeightsError(f"{path} is not a dict of tensors; {_how_to_get()}")


@lru_cache(maxsize=1)
def _load(path: str, mtime_ns: int, size: int) -> torch.nn.Module:
    try:
        from torch_fidelity import FeatureExtractorInceptionV3
    except ImportError as e:
        raise ImportError("the Inception-v3 FID path needs torch-fidelity: pip install 'torch-fidelity>=0.3'") from e
    check_state_dict_file(path)   # torch-fidelity unpickles with weights_only=False: refuse anything but tensors first
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", [str(FEATURE_DIM)], feature_extractor_weights_path=path)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise InceptionWeightsError(f"{path} does not hold Inception-v3 FID weights ({first}); {_how_to_get()}") from None
    return net.eval()


def load_inception(path: str | Path | None) -> torch.nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 (pool3 output) from a local weights file; cached for the last path."""
    p = check_weights_path(path).resolve()
    st = p.stat()
    return _load(str(p), st.st_mtime_ns, st.st_size)


def to_inception_input(images: torch.Tensor) -> torch.Tensor:
    """Float NCHW in [-1, 1] -> uint8 3-channel images (grayscale repeated), as if saved to and read from PNG."""
    x = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def inception_features(images: torch.Tensor, weights: str | Path | None, batch_size: int = 64,
                       device: str | torch.device = "cpu") -> torch.Tensor:
    """pool3 features [N, 2048] (float32, CPU) of images [N, 1 or 3, H, W] in [-1, 1]."""
    net = load_inception(weights).to(device)
    out = [net(to_inception_input(chunk).to(device))[0].float().cpu() for chunk in images.split(batch_size)]
    return torch.cat(out) if out else torch.empty(0, FEATURE_DIM)
