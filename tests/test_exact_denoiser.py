"""The exact ε-predictor of Gaussian data, N(μ, s²), plugged into the sampler and the likelihood bound."""
import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from analytic import gaussian_denoiser
from ddpmkit import schedules
from ddpmkit.likelihood import bits_per_dim
from ddpmkit.samplers import sample_ddpm

MU, SIGMA = 0.3, 0.5


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_ancestral_sampler_reproduces_the_data_distribution(variance):
    s = schedules.linear(1000)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 1, 2, 2, generator=g)
    out = sample_ddpm(gaussian_denoiser(s, MU, SIGMA, variance), x, clip_x0=False, generator=g)
    # 8,000 values: the standard error of the mean is 0.0056 and of the std 0.004.
    assert out.mean().item() == pytest.approx(MU, abs=0.025)
    assert out.std().item() == pytest.approx(SIGMA, abs=0.025)


def test_respaced_ancestral_sampler_with_few_steps_keeps_the_mean():
    s = schedules.linear(1000)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 1, 2, 2, generator=g)
    out = sample_ddpm(gaussian_denoiser(s, MU, SIGMA), x, timesteps=50, clip_x0=False, generator=g)
    assert out.mean().item() == pytest.approx(MU, abs=0.025)
    # With few big jumps, β̃ drops the x_0-uncertainty part of the true reverse variance: the spread shrinks a
    # little (0.45 measured for s = 0.5), but must not collapse or grow.
    assert 0.40 < out.std().item() < SIGMA + 0.01


def test_progressive_callback_reports_every_step():
    s = schedules.linear(100)
    seen = []
    x = torch.randn(4, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    sample_ddpm(gaussian_denoiser(s, MU, SIGMA), x, generator=torch.Generator().manual_seed(0),
                callback=lambda st: seen.append((st["i"], st["t"], st["x"].shape, st["x0_pred"].shape)))
    assert [i for i, *_ in seen] == list(range(100))
    assert [t for _, t, *_ in seen] == list(range(99, -1, -1))


def analytic_bpd(s, mu: float, sig: float, variance: str) -> float:
    """The bound in bits/dim for Gaussian data under the exact denoiser, by closed-form expectations (KL terms,
    prior) and 2-D Gauss-Hermite quadrature (the discretized decoder), in float64 numpy."""
    ab = s.alphas_cumprod.numpy()
    ab_prev = s.alphas_cumprod_prev.numpy()
    betas = s.betas.numpy()
    c1 = s.posterior_mean_coef1.numpy()
    c = np.sqrt(1 - ab) / (ab * sig ** 2 + 1 - ab)       # ε̂ = c (x_t − √ᾱ μ)
    a = (1 - np.sqrt(1 - ab) * c) / np.sqrt(ab)           # x̂_0 = a x_t + b
    b = np.sqrt(1 - ab) * c * mu
    # μ_q − μ_θ = coef1 (x_0 − a x_t − b),  x_t = √ᾱ x_0 + √(1−ᾱ) ε
    k = 1 - a * np.sqrt(ab)
    e_d2 = c1 ** 2 * ((mu * k - b) ** 2 + k ** 2 * sig ** 2 + a ** 2 * (1 - ab))
    var_q = betas * (1 - ab_prev) / (1 - ab)
    var_p = var_q.copy() if variance == "fixed_small" else betas.copy()
    kl = 0.5 * (np.log(var_p[1:]) - np.log(var_q[1:]) + var_q[1:] / var_p[1:] - 1 + e_d2[1:] / var_p[1:])
    # decoder: x̂_0(x_1) with variance β̃ of step 2 (clipped), bins x ± 1/255, open edges
    sd = math.sqrt(var_q[1])
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    weights = weights / weights.sum()
    x0 = mu + sig * nodes[:, None]
    eps = nodes[None, :]
    m = a[0] * (math.sqrt(ab[0]) * x0 + math.sqrt(1 - ab[0]) * eps) + b[0]
    hi = np.where(x0 > 0.999, 1.0, ndtr((x0 + 1 / 255 - m) / sd))
    lo = np.where(x0 < -0.999, 0.0, ndtr((x0 - 1 / 255 - m) / sd))
    dec = -(weights[:, None] * weights[None, :] * np.log(np.maximum(hi - lo, 1e-12))).sum()
    prior = 0.5 * (-np.log(1 - ab[-1]) + (1 - ab[-1]) + ab[-1] * (mu ** 2 + sig ** 2) - 1)
    return float((kl.sum() + dec + prior) / math.log(2))


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_bits_per_dim_matches_the_analytic_bound(variance):
    s = schedules.linear(1000)
    g = torch.Generator().manual_seed(3)
    x0 = MU + SIGMA * torch.randn(1024, 1, 4, 4, generator=g, dtype=torch.float64)
    r = bits_per_dim(gaussian_denoiser(s, MU, SIGMA, variance), x0, generator=g)
    expect = analytic_bpd(s, MU, SIGMA, variance)
    se = r["total"].std().item() / math.sqrt(len(r["total"]))
    assert r["total"].mean().item() == pytest.approx(expect, abs=4 * se + 1e-3)
    # the prior term is deterministic given x_0: check it tightly on its own
    ab = s.alphas_cumprod[-1].item()
    m2 = (x0 ** 2).mean().item()
    assert r["prior"].mean().item() == pytest.approx(
        0.5 * (-math.log(1 - ab) + (1 - ab) + ab * m2 - 1) / math.log(2), rel=1e-6)


def test_wrong_denoiser_gets_a_worse_bound():
    """A predictor for the wrong mean must score clearly worse: the bound sees the difference."""
    s = schedules.linear(1000)
    g = torch.Generator().manual_seed(4)
    x0 = MU + SIGMA * torch.randn(256, 1, 2, 2, generator=g, dtype=torch.float64)
    good = bits_per_dim(gaussian_denoiser(s, MU, SIGMA), x0, generator=torch.Generator().manual_seed(5))
    bad = bits_per_dim(gaussian_denoiser(s, -MU, SIGMA), x0, generator=torch.Generator().manual_seed(5))
    assert bad["total"].mean() > good["total"].mean() + 0.1
