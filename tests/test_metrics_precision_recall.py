"""Improved precision/recall (Kynkäänniemi et al. 2019) on toy sets whose answers are known."""
import math

import pytest
import torch

from ddpmkit.metrics import knn_radii, precision_recall


def _modes(n_modes: int, per_mode: int, g: torch.Generator, first: int = 0) -> torch.Tensor:
    angles = torch.arange(10, dtype=torch.float64) * (2 * math.pi / 10)
    centres = 20 * torch.stack([angles.cos(), angles.sin()], dim=1)[first:first + n_modes]   # ≥ 12 apart
    return (centres[:, None] + 0.3 * torch.randn(n_modes, per_mode, 2, generator=g, dtype=torch.float64)).reshape(-1, 2)


def test_identical_sets_have_precision_and_recall_one():
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert precision_recall(x, x.clone(), k=3) == (1.0, 1.0)


def test_disjoint_far_apart_sets_have_precision_and_recall_zero():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 100.0
    assert precision_recall(real, fake, k=3) == (0.0, 0.0)


def test_fake_covering_half_the_modes_has_full_precision_and_half_recall():
    g = torch.Generator().manual_seed(2)
    real = _modes(10, 100, g)
    fake = _modes(5, 200, g)            # fresh draws from the first five modes only
    precision, recall = precision_recall(real, fake, k=3)
    assert precision > 0.9
    assert recall == pytest.approx(0.5, abs=0.05)


def test_small_exact_case_excludes_each_point_from_its_own_neighbours():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])      # k = 1: every radius is 1
    fake = torch.tensor([[0.5], [4.5], [3.9]])             # radii 3.4, 0.6, 0.6
    assert torch.equal(knn_radii(real, k=1), torch.ones(4, dtype=real.dtype))
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == pytest.approx(2 / 3)               # 4.5 is 1.5 from the nearest real point
    assert recall == 1.0                                   # every real point lies within 3.4 of 0.5


def test_agrees_with_torch_fidelity():
    prc = pytest.importorskip("torch_fidelity.metric_prc")
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(300, 6, generator=g), torch.randn(250, 6, generator=g) * 1.5 + 0.3
    want_precision, want_recall = prc.calculate_precision_recall_full(fake.double(), real.double(), neighborhood=3)
    got = precision_recall(real, fake, k=3, batch_size=64)     # several chunks
    assert got.precision == pytest.approx(want_precision) and got.recall == pytest.approx(want_recall)
    assert 0 < got.precision < 1 and 0 < got.recall < 1


def test_k_must_be_smaller_than_the_set():
    with pytest.raises(ValueError, match="k=3"):
        precision_recall(torch.randn(3, 2), torch.randn(10, 2), k=3)
