"""KID: unbiased MMD² with the cubic polynomial kernel, averaged over random subsets (Bińkowski et al. 2018)."""
import numpy as np
import pytest
import torch

from ddpmkit.metrics import kid_from_features, mmd2_unbiased, polynomial_kernel


def test_two_draws_of_one_distribution_give_kid_near_zero():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4000, 16, generator=g), torch.randn(4000, 16, generator=g)
    subsets = 100
    kid = kid_from_features(a, b, subsets=subsets, subset_size=100, generator=g)
    # Unbiased: the mean sits within a few standard errors of 0. (A biased V-statistic gives ≈ 0.15 here, ~6 std.)
    assert abs(kid.mean) < 4 * kid.std / subsets ** 0.5
    assert kid.std > 0


def test_different_distributions_give_kid_clearly_above_zero():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2000, 16, generator=g), torch.randn(2000, 16, generator=g) * 1.2 + 0.5
    kid = kid_from_features(a, b, subsets=50, subset_size=200, generator=g)
    assert kid.mean > 10 * kid.std / 50 ** 0.5 and kid.mean > 0.1


def test_mmd2_matches_the_written_out_u_statistic():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    k = lambda u, v: (u @ v / 3 + 1) ** 3                                            # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / (7 * 5)
    assert mmd2_unbiased(x, y) == pytest.approx(float(xx + yy - 2 * xy), rel=1e-12)
    assert polynomial_kernel(x, y).shape == (7, 5)


def test_agrees_with_torch_fidelity_on_one_full_subset():
    kid_ref = pytest.importorskip("torch_fidelity.metric_kid")
    g = torch.Generator().manual_seed(3)
    a = torch.randn(200, 8, generator=g, dtype=torch.float64)
    b = torch.randn(200, 8, generator=g, dtype=torch.float64) + 0.3
    want = kid_ref.kernel_mmd(a.numpy(), b.numpy(), kid_kernel="poly", kid_kernel_poly_degree=3,
                              kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    got = kid_from_features(a, b, subsets=1, subset_size=200)      # a full subset: order does not matter
    assert got.mean == pytest.approx(float(want), rel=1e-10) and got.std == 0.0


def test_subsets_come_from_the_generator():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(300, 4, generator=g), torch.randn(300, 4, generator=g)
    one = kid_from_features(a, b, subsets=5, subset_size=50, generator=torch.Generator().manual_seed(7))
    two = kid_from_features(a, b, subsets=5, subset_size=50, generator=torch.Generator().manual_seed(7))
    other = kid_from_features(a, b, subsets=5, subset_size=50, generator=torch.Generator().manual_seed(8))
    assert one == two and one != other
    assert np.isfinite(one.mean)


def test_subset_larger_than_a_set_is_a_clear_error():
    with pytest.raises(ValueError, match="subset_size=100"):
        kid_from_features(torch.randn(50, 4), torch.randn(200, 4), subset_size=100)
