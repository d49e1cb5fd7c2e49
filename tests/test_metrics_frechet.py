"""FID on features: zero against itself, the closed form for Gaussians, and agreement with torchmetrics."""
import math

import pytest
import torch

from ddpmkit.metrics import fid_from_features, frechet_distance, gaussian_stats


def _random_spd(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_fid_of_a_set_against_itself_is_zero():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 32, generator=g) * 3 + 1
    assert abs(fid_from_features(x, x)) < 1e-8
    assert fid_from_features(x, x + 0.5) == pytest.approx(32 * 0.25, rel=1e-9)   # a pure shift adds ||Δμ||² only


def test_closed_form_for_commuting_covariances():
    # Diagonal Σ: Tr(Σ1 + Σ2 - 2(Σ1Σ2)^½) = Σ_i (√a_i - √b_i)²
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 0.25])
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    want = 1 + 0 + 4 + ((a.sqrt() - b.sqrt()) ** 2).sum().item()
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(want, rel=1e-12)


def test_closed_form_matches_scipy_sqrtm_for_general_covariances():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(1)
    d = 6
    s1, s2 = _random_spd(d, g), _random_spd(d, g)
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    covmean = scipy_linalg.sqrtm((s1 @ s2).numpy()).real
    want = float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * covmean.trace())
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)


def test_fid_of_gaussian_samples_matches_the_true_parameters():
    g = torch.Generator().manual_seed(2)
    d, n = 4, 40_000
    s1, s2 = _random_spd(d, g), _random_spd(d, g)
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.full((d,), 0.5, dtype=torch.float64)
    x1 = mu1 + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    x2 = mu2 + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s2).T
    truth = frechet_distance(mu1, s1, mu2, s2)
    assert truth > 1.0
    assert fid_from_features(x1, x2) == pytest.approx(truth, rel=0.03)


def test_gaussian_stats_are_mean_and_unbiased_covariance():
    x = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    mu, sigma = gaussian_stats(x)
    assert torch.allclose(mu, torch.tensor([2.0, 2.0], dtype=torch.float64))
    assert torch.allclose(sigma, torch.tensor([[4.0, 3.0], [3.0, 3.0]], dtype=torch.float64))


def test_fewer_samples_than_dimensions_agrees_with_the_covariance_route():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(10, 64, generator=g), torch.randn(12, 64, generator=g) * 2   # N < D: rank-deficient Σ
    via_covariances = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert math.isfinite(via_covariances) and via_covariances > 0
    assert fid_from_features(a, b) == pytest.approx(via_covariances, rel=1e-7)   # √ of ~1e-15 eigenvalues
    assert abs(fid_from_features(a, a)) < 1e-9


def test_agrees_with_torchmetrics_on_the_same_features():
    fid_mod = pytest.importorskip("torchmetrics.image.fid")

    class Identity(torch.nn.Module):
        num_features = 16

        def forward(self, x):
            return x

    g = torch.Generator().manual_seed(4)
    real = torch.randn(300, 16, generator=g, dtype=torch.float64)
    fake = torch.randn(300, 16, generator=g, dtype=torch.float64) * 1.3 + 0.2
    metric = fid_mod.FrechetInceptionDistance(feature=Identity(), normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert fid_from_features(real, fake) == pytest.approx(float(metric.compute()), rel=1e-6)


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mismatched feature widths"):
        fid_from_features(torch.randn(5, 3), torch.randn(5, 4))


def test_non_finite_features_get_one_clear_line():
    x = torch.randn(20, 4, dtype=torch.float64)
    x[3, 1], x[7, 0] = float("nan"), float("inf")
    for call in (lambda: gaussian_stats(x), lambda: fid_from_features(x, torch.randn(20, 4))):
        with pytest.raises(ValueError, match="2 of 20 feature vectors contain NaN or inf") as info:
            call()
        assert "\n" not in str(info.value)
    mu, sigma = gaussian_stats(torch.randn(20, 4))
    with pytest.raises(ValueError, match="NaN or inf"):
        frechet_distance(mu * float("nan"), sigma, mu, sigma)
