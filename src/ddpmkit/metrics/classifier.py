"""A small MNIST digit classifier: the feature network for domain FID/KID/PR and the reader for prompt accuracy.

Four 3×3 conv stages (28 → 14 → 7 → 3, conv-BN-ReLU, max-pool between) and a global average pool give a 128-d
feature vector (the analogue of Inception-v3's pool3); a linear layer reads the ten digit logits from it. Inputs are [N, 1, 28, 28] in [-1, 1].
Trained by ``scripts/train_mnist_classifier.py`` on the first 9,000 embedded digits and shipped as safetensors + JSON.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

WEIGHTS_NAME = "mnist_classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, ...] = (32, 64, 128, 128)   # one conv stage each; 2× max-pool between: 28, 14, 7, 3
    num_classes: int = 10
    dropout: float = 0.2                        # on the pooled features, training only

    @property
    def feature_dim(self) -> int:
        return self.channels[-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown classifier config keys: {', '.join(sorted(unknown))}")
        d = dict(d)
        if "channels" in d:
            d["channels"] = tuple(int(c) for c in d["channels"])
        return cls(**d)


class MNISTClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig = ClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        stages, c_in = [], 1
        for c in config.channels:
            stages.append(nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c_in, config.num_classes)

    @property
    def num_features(self) -> int:   # the name torchmetrics looks for on a custom feature network
        return self.config.feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features [N, feature_dim] of images [N, 1, 28, 28] in [-1, 1]."""
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = stage(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, num_classes]."""
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted digit [N] (int64)."""
        return self.forward(x).argmax(dim=1)


def shipped_weights_path() -> Path:
    return Path(str(resources.files("ddpmkit") / "weights" / f"{WEIGHTS_NAME}.safetensors"))


def load_mnist_classifier(path: str | Path | None = None, device: str | torch.device = "cpu") -> MNISTClassifier:
    """The classifier in eval mode with frozen weights; ``path`` defaults to the shipped weights.

    The config is read from the JSON next to the safetensors file (same stem).
    """
    path = Path(path) if path is not None else shipped_weights_path()
    meta_path = path.with_suffix(".json")
    if not path.is_file() or not meta_path.is_file():
        raise FileNotFoundError(
            f"MNIST classifier weights not found at {path} (+ {meta_path.name}); "
            "train them with `python scripts/train_mnist_classifier.py`"
        )
    meta = json.loads(meta_path.read_text())
    model = MNISTClassifier(ClassifierConfig.from_dict(meta["config"]))
    model.load_state_dict(load_file(str(path), device="cpu"))
    return model.eval().requires_grad_(False).to(device)


@lru_cache(maxsize=2)
def _shipped_classifier(device: str) -> MNISTClassifier:
    return load_mnist_classifier(device=device)


def shipped_classifier(device: str | torch.device = "cpu") -> MNISTClassifier:
    """The shipped classifier, loaded once per device and shared (do not modify it)."""
    return _shipped_classifier(str(torch.device(device)))
