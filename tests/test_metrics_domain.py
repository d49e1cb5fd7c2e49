"""Domain FID/KID/PR on MNIST-classifier features, with reference features cached outside the package."""
from pathlib import Path

import pytest
import torch

import ddpmkit
from ddpmkit.metrics import REFERENCES, cache_dir, domain_features, evaluate_images, reference_features
from ddpmkit.metrics import features as features_module
from ddpmkit.metrics.data import embedded_mnist


@pytest.fixture(scope="module")
def digits():
    x_train, y_train = embedded_mnist("train")
    return x_train[:1000], y_train[:1000]


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_real_digits_score_well_and_broken_digits_badly(digits, cache):
    x, y = digits
    real = evaluate_images(x, "mnist-test", cache=cache, kid_subsets=20, kid_subset_size=200)
    ones = evaluate_images(x[y == 1], "mnist-test", cache=cache, kid_subsets=20, kid_subset_size=200)  # one mode of ten
    noisy = evaluate_images((x + 0.8 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1),
                            "mnist-test", cache=cache, kid_subsets=20, kid_subset_size=200)
    assert real["n"] == 1000 and real["n_reference"] == 1000 and real["feature"] == "mnist"
    assert real["fid"] < 0.1 * ones["fid"] and real["fid"] < 0.1 * noisy["fid"]
    assert abs(real["kid_mean"]) < 3 * real["kid_std"] and noisy["kid_mean"] > 10 * noisy["kid_std"]
    assert real["precision"] > 0.8 and real["recall"] > 0.8     # 1,000 vs 1,000 real digits, k = 3
    assert ones["precision"] > 0.75 and ones["recall"] < 0.4    # faithful but not diverse
    assert noisy["precision"] < 0.2
    assert ones["kid_subset_size"] == int((y == 1).sum())          # subsets shrink to the smaller set


def test_a_set_against_itself(cache):
    x, _ = embedded_mnist("test")
    out = evaluate_images(x, reference=x, metrics=("fid", "pr"))
    assert abs(out["fid"]) < 1e-6 and out["precision"] == out["recall"] == 1.0
    assert out["fid"] == pytest.approx(evaluate_images(x, "mnist-test", metrics=("fid",), cache=cache)["fid"], abs=1e-6)
    assert "kid_mean" not in out


def test_reference_features_are_cached_once_outside_the_package(cache, monkeypatch):
    first = reference_features("mnist-test", cache=cache)
    files = list((cache / "metrics").glob("mnist-test-mnist-*.safetensors"))
    assert len(files) == 1
    monkeypatch.setattr(features_module, "embedded_mnist", lambda split: pytest.fail("cache was not used"))
    second = reference_features("mnist-test", cache=cache)
    assert torch.equal(first["features"], second["features"]) and torch.equal(first["sigma"], second["sigma"])
    assert first["features"].shape == (1000, 128) and first["mu"].dtype == torch.float64


def test_default_cache_dir_is_a_user_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("DDPMKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "ddpmkit"
    monkeypatch.setenv("DDPMKIT_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    package = Path(ddpmkit.__file__).parent
    assert package not in cache_dir().parents


def test_domain_features_accept_rgb_and_other_sizes():
    x, _ = embedded_mnist("test")
    x = x[:8]
    f = domain_features(x)
    assert f.shape == (8, 128) and f.dtype == torch.float32
    assert torch.allclose(domain_features(x.expand(-1, 3, -1, -1)), f, atol=1e-6)
    assert domain_features(torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)).shape == (8, 128)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "x / 127.5 - 1"),
    (torch.full((2, 1, 28, 28), 255.0), r"\[-1, 1\]"),
    (torch.zeros(2, 28, 28), r"\[N, 1 or 3, H, W\]"),
])
def test_bad_images_are_one_clear_line(bad, match):
    with pytest.raises(ValueError, match=match):
        evaluate_images(bad)


def test_unknown_names_are_clear_errors():
    x = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_images(x, metrics=("is",))
    with pytest.raises(ValueError, match="unknown reference"):
        evaluate_images(x, reference="cifar10")
    with pytest.raises(ValueError, match="unknown feature"):
        evaluate_images(x, feature="clip")
    assert set(REFERENCES) == {"mnist-test", "mnist-train"}
