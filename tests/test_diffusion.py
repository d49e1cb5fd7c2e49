"""Forward process, posterior, parameterisations and likelihood terms against independent computations."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from ddpmkit import diffusion as D
from ddpmkit import schedules


@pytest.fixture(scope="module")
def s():
    return schedules.linear(1000)


def test_q_sample_moments(s):
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1, 1, 1), 0.7)
    t = torch.full((20000,), 300)
    xt = D.q_sample(s, x0, t, torch.randn(x0.shape, generator=g))
    ab = s.alphas_cumprod[300].item()
    assert xt.mean().item() == pytest.approx(math.sqrt(ab) * 0.7, abs=0.02)
    assert xt.var().item() == pytest.approx(1 - ab, rel=0.03)


@pytest.mark.parametrize("t", [1, 10, 400, 999])
def test_posterior_matches_bayes_rule_numerically(s, t):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0): normalise on a fine grid, compare moments."""
    x0, xt = 0.4, -0.3
    ab_prev = s.alphas_cumprod[t - 1].item()
    beta = s.betas[t].item()
    m_prior, v_prior = math.sqrt(ab_prev) * x0, 1 - ab_prev
    mean_guess = m_prior
    grid = np.linspace(mean_guess - 8, mean_guess + 8, 400001)
    logp = stats.norm.logpdf(xt, np.sqrt(1 - beta) * grid, np.sqrt(beta)) + stats.norm.logpdf(grid, m_prior, np.sqrt(v_prior))
    w = np.exp(logp - logp.max())
    w /= w.sum()
    num_mean = (w * grid).sum()
    num_var = (w * (grid - num_mean) ** 2).sum()
    mean, var, _ = D.q_posterior(s, torch.tensor([[[[x0]]]], dtype=torch.float64),
                                 torch.tensor([[[[xt]]]], dtype=torch.float64), torch.tensor([t]))
    assert mean.item() == pytest.approx(num_mean, abs=1e-6)
    assert var.item() == pytest.approx(num_var, rel=1e-4)


def test_parameterisation_round_trips(s):
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(8, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(8, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.randint(0, 1000, (8,), generator=g)
    xt = D.q_sample(s, x0, t, eps)
    assert torch.allclose(D.x0_from_eps(s, xt, t, eps), x0, atol=1e-8)
    assert torch.allclose(D.eps_from_x0(s, xt, t, x0), eps, atol=1e-8)
    v = D.v_from_x0_eps(s, x0, t, eps)
    assert torch.allclose(D.x0_from_v(s, xt, t, v), x0, atol=1e-8)
    assert torch.allclose(D.eps_from_v(s, xt, t, v), eps, atol=1e-8)
    for pred, out in (("eps", eps), ("x0", x0), ("v", v)):
        x0h, epsh = D.predict_x0_eps(s, pred, out, xt, t)
        assert torch.allclose(x0h, x0, atol=1e-8) and torch.allclose(epsh, eps, atol=1e-8)


def test_learned_variance_endpoints(s):
    """Nichol & Dhariwal eq. (15): v = +1 gives log β_t, v = -1 gives log β̃_t (clipped at t = 0)."""
    t = torch.tensor([0, 1, 500, 999])
    xt = torch.zeros(4, 1, 2, 2, dtype=torch.float64)
    for v, expect in ((1.0, torch.log(s.betas[t])), (-1.0, s.posterior_log_variance_clipped[t])):
        out = torch.cat([torch.zeros_like(xt), torch.full_like(xt, v)], 1)
        lv = D.p_mean_variance(s, out, xt, t, variance="learned").log_variance
        exp = expect.clone()
        if v == 1.0:
            exp[0] = s.posterior_log_variance_clipped[0]   # t = 0: the decoder uses β̃_1 (Ho et al.)
        assert torch.allclose(lv[:, 0, 0, 0], exp, atol=1e-12)


def test_fixed_variances(s):
    t = torch.tensor([0, 3, 999])
    xt = torch.zeros(3, 1, 1, 1, dtype=torch.float64)
    small = D.p_mean_variance(s, xt, xt, t, variance="fixed_small").log_variance.flatten()
    large = D.p_mean_variance(s, xt, xt, t, variance="fixed_large").log_variance.flatten()
    assert torch.allclose(small, s.posterior_log_variance_clipped[t])
    assert torch.allclose(large[1:], torch.log(s.betas[t[1:]]))
    assert large[0] == s.posterior_log_variance_clipped[0]


def test_reverse_mean_with_true_x0_is_the_posterior_mean(s):
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(5, 1, 3, 3, generator=g, dtype=torch.float64).clamp(-1, 1)
    eps = torch.randn(5, 1, 3, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 2, 50, 500, 999])
    xt = D.q_sample(s, x0, t, eps)
    p = D.p_mean_variance(s, eps, xt, t, prediction="eps", clip_x0=False)
    assert torch.allclose(p.mean, D.q_posterior(s, x0, xt, t)[0], atol=1e-10)


def test_skip_step_uses_respaced_beta(s):
    """Jumping t → t_prev equals one step of the schedule whose β is 1 - ᾱ_t/ᾱ_prev (improved-diffusion §4)."""
    t, tp = 700, 650
    ab_t, ab_p = s.alphas_cumprod[t].item(), s.alphas_cumprod[tp].item()
    beta = 1 - ab_t / ab_p
    xt = torch.full((1, 1, 1, 1), 0.2, dtype=torch.float64)
    out = torch.cat([torch.zeros_like(xt), torch.ones_like(xt)], 1)
    p = D.p_mean_variance(s, out, xt, t, t_prev=tp, variance="learned", clip_x0=False)
    assert p.log_variance.item() == pytest.approx(math.log(beta), rel=1e-12)
    p = D.p_mean_variance(s, out[:, :1], xt, t, t_prev=tp, variance="fixed_small", clip_x0=False)
    assert p.log_variance.item() == pytest.approx(math.log(beta * (1 - ab_p) / (1 - ab_t)), rel=1e-12)


def test_normal_kl_closed_form():
    m1, lv1, m2, lv2 = (torch.tensor(v, dtype=torch.float64) for v in (0.3, math.log(0.5), -0.2, math.log(2.0)))
    kl = D.normal_kl(m1, lv1, m2, lv2).item()
    x = np.linspace(-15, 15, 300001)
    p, q = stats.norm.pdf(x, 0.3, math.sqrt(0.5)), stats.norm.pdf(x, -0.2, math.sqrt(2.0))
    assert kl == pytest.approx(integrate.trapezoid(p * np.log(p / q), x), rel=1e-6)


@pytest.mark.parametrize("x,mean,scale", [(0.0, 0.01, 0.02), (-1.0, -0.95, 0.05), (1.0, 0.9, 0.3), (0.5, 0.0, 0.5)])
def test_discretized_decoder_against_direct_integration(x, mean, scale):
    """log ∫_{bin} N(y; mean, scale²) dy with bins x ± 1/255 and open edge bins."""
    lo = -np.inf if x <= -1 + 1e-6 else x - 1 / 255
    hi = np.inf if x >= 1 - 1e-6 else x + 1 / 255
    direct, _ = integrate.quad(lambda y: stats.norm.pdf(y, mean, scale), lo, hi, epsabs=1e-13)
    ours = D.discretized_gaussian_log_likelihood(torch.tensor(x, dtype=torch.float64),
                                                 torch.tensor(mean, dtype=torch.float64),
                                                 torch.tensor(math.log(scale), dtype=torch.float64)).item()
    assert ours == pytest.approx(math.log(direct), abs=2e-3)   # the tanh CDF approximation is ~1e-4 absolute


def test_decoder_probabilities_sum_to_one():
    grid = torch.linspace(-1, 1, 256, dtype=torch.float64)
    lp = D.discretized_gaussian_log_likelihood(grid, torch.tensor(0.13, dtype=torch.float64),
                                               torch.tensor(math.log(0.2), dtype=torch.float64))
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-3)


def test_dynamic_thresholding_matches_imagen_rule():
    """Imagen: s = max(1, p-quantile of |x̂0|) per sample, x̂0 ← clamp(x̂0, -s, s)/s; in-range samples are untouched."""
    from ddpmkit.diffusion import threshold_x0
    inside = torch.linspace(-0.9, 0.9, 100).reshape(1, 1, 10, 10)
    wide = torch.linspace(-3.0, 3.0, 100).reshape(1, 1, 10, 10)
    x = torch.cat([inside, wide])
    out = threshold_x0(x, 0.9)
    assert torch.equal(out[0], inside[0])
    s = np.quantile(np.abs(wide.numpy().ravel()), 0.9)          # numpy's default (linear) quantile, as torch's
    assert s > 2.0
    np.testing.assert_allclose(out[1].numpy(), np.clip(wide[0].numpy(), -s, s) / s, rtol=1e-6)
    assert out.abs().max() <= 1.0
    assert torch.equal(threshold_x0(x, True), x.clamp(-1, 1)) and torch.equal(threshold_x0(x, False), x)
    with pytest.raises(ValueError, match="percentile"):
        threshold_x0(x, 1.5)
