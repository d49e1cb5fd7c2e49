"""The importance-sampled estimate of the bound: exact where the proposal matches the terms, unbiased otherwise, and
equal to the analytic bound of Gaussian data under the exact denoiser."""
import math

import pytest
import torch

import ddpmkit.likelihood as lk
from analytic import gaussian_denoiser
from ddpmkit import schedules
from test_exact_denoiser import MU, SIGMA, analytic_bpd

T = 200


def fake_terms(monkeypatch, scale):
    """Make L_t deterministic: image i has L_t = scale(t) · (1 + i); the decoder term is t = 0's."""
    def vlb_term(denoiser, x0, t, cond=None, generator=None):
        return scale(t.double()) * (1 + torch.arange(x0.shape[0], dtype=torch.float64))
    monkeypatch.setattr(lk, "vlb_term", vlb_term)
    s = schedules.linear(T)
    den = gaussian_denoiser(s, MU, SIGMA)
    x0 = torch.zeros(3, 1, 2, 2)
    t = torch.arange(T, dtype=torch.float64)
    exact = (scale(t).sum() * (1 + torch.arange(3, dtype=torch.float64))) + lk.prior_bpd(s, x0).double()
    return den, x0, exact


def test_a_proposal_proportional_to_the_terms_gives_the_exact_sum_for_every_draw(monkeypatch):
    scale = lambda t: torch.exp(-t / 30) + 0.01     # noqa: E731
    den, x0, exact = fake_terms(monkeypatch, scale)
    p = scale(torch.arange(T, dtype=torch.float64))
    p[0] = 0
    for seed in range(5):
        r = lk.bits_per_dim_importance(den, x0, p / p.sum(), timesteps=3, generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(r["total"], exact, rtol=1e-12)


def test_a_poor_proposal_is_still_unbiased(monkeypatch):
    scale = lambda t: torch.exp(-t / 30) + 0.01     # noqa: E731
    den, x0, exact = fake_terms(monkeypatch, scale)
    uniform = torch.full((T,), 1.0 / (T - 1), dtype=torch.float64)
    uniform[0] = 0
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([lk.bits_per_dim_importance(den, x0, uniform, timesteps=4, generator=g)["total"]
                         for _ in range(400)])
    se = draws.std(0) / math.sqrt(len(draws))
    assert (draws.std(0) > 0).all()                              # the draws do vary ...
    assert ((draws.mean(0) - exact).abs() < 4 * se).all()        # ... around the exact sum


def test_proposal_is_a_distribution_over_the_kl_terms_that_keeps_every_term():
    s = schedules.linear(T)
    x0 = MU + SIGMA * torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    p = lk.vlb_proposal(gaussian_denoiser(s, MU, SIGMA), x0, grid=16, floor=0.2,
                        generator=torch.Generator().manual_seed(1))
    assert p.shape == (T,) and p[0] == 0 and p.sum().item() == pytest.approx(1.0)
    assert (p[1:] >= 0.2 / (T - 1) - 1e-15).all()
    assert p[1:11].sum() > 10 / (T - 1)      # the early terms, where the bound's bits are, get more than uniform


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_estimate_matches_the_analytic_bound_with_fifty_evaluations(variance):
    s = schedules.linear(1000)
    g = torch.Generator().manual_seed(3)
    x0 = MU + SIGMA * torch.randn(1024, 1, 4, 4, generator=g, dtype=torch.float64)
    den = gaussian_denoiser(s, MU, SIGMA, variance)
    p = lk.vlb_proposal(den, x0[:64], generator=g)
    r = lk.bits_per_dim_importance(den, x0, p, timesteps=50, generator=g)
    se = r["total"].std().item() / math.sqrt(len(r["total"]))
    assert r["total"].mean().item() == pytest.approx(analytic_bpd(s, MU, SIGMA, variance), abs=4 * se + 1e-3)
    assert se < 0.05                          # 51 evaluations per image, not 1,000, and still a tight figure


def test_bad_proposal_or_count_is_refused():
    s = schedules.linear(T)
    den, x0 = gaussian_denoiser(s, MU, SIGMA), torch.zeros(2, 1, 2, 2)
    good = torch.full((T,), 1.0 / (T - 1), dtype=torch.float64)
    good[0] = 0
    for bad in (good[1:], torch.full((T,), 1.0 / T, dtype=torch.float64), torch.where(torch.arange(T) == 5, 0.0, good)):
        with pytest.raises(ValueError, match="proposal"):
            lk.bits_per_dim_importance(den, x0, bad)
    with pytest.raises(ValueError, match="timesteps"):
        lk.bits_per_dim_importance(den, x0, good, timesteps=0)
    with pytest.raises(ValueError, match="floor"):
        lk.vlb_proposal(den, x0, floor=0)
