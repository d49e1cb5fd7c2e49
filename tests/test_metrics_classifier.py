"""The shipped MNIST digit classifier: loads from safetensors + JSON and reads the held-out digits."""
import json

import pytest
import torch

from ddpmkit.metrics import load_mnist_classifier
from ddpmkit.metrics.classifier import shipped_weights_path
from ddpmkit.metrics.data import embedded_mnist


@pytest.fixture(scope="module")
def model():
    return load_mnist_classifier()


def test_shipped_classifier_reaches_98_percent_on_the_held_out_digits(model):
    x, y = embedded_mnist("test")
    assert len(y) == 1000
    accuracy = (model.predict(x) == y).double().mean().item()
    assert accuracy >= 0.98
    recorded = json.loads(shipped_weights_path().with_suffix(".json").read_text())
    assert recorded["heldout_accuracy"] == pytest.approx(accuracy, abs=1e-4)      # the JSON tells the truth
    assert {"command", "wall_time_s", "config"} <= set(recorded)


def test_features_logits_and_predictions_fit_together(model):
    x, _ = embedded_mnist("test")
    x = x[:16]
    feats, logits = model.features(x), model(x)
    assert feats.shape == (16, model.num_features) and logits.shape == (16, 10)
    assert torch.allclose(model.head(feats), logits)                  # features are the penultimate layer
    assert torch.equal(model.predict(x), logits.argmax(dim=1))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) < 500_000


def test_weights_are_safetensors_not_pickle():
    with open(shipped_weights_path(), "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        assert f.read(1) == b"{" and header_len < 100_000                # safetensors: u64 length + JSON header


def test_missing_weights_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_mnist_classifier.py"):
        load_mnist_classifier(tmp_path / "nothing.safetensors")
