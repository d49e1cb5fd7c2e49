import math

import pytest
import torch

from ddpmkit import schedules


def test_linear_matches_paper_values():
    s = schedules.linear(num_steps=1000, beta_start=1e-4, beta_end=0.02)
    assert s.betas.dtype == torch.float64 and len(s.betas) == 1000
    assert s.betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert s.betas[-1].item() == pytest.approx(0.02, abs=1e-15)
    # Ho et al.: ᾱ_T ≈ 4.04e-5, so x_T is almost pure noise.
    assert s.alphas_cumprod[-1].item() == pytest.approx(4.0358e-5, rel=1e-3)


def test_linear_scales_for_other_T():
    s = schedules.linear(num_steps=500)
    assert s.betas[0].item() == pytest.approx(2e-4) and s.betas[-1].item() == pytest.approx(0.04)


def test_cosine_follows_its_closed_form_and_caps_beta():
    T, off = 1000, 0.008
    s = schedules.cosine(num_steps=T)
    f = lambda u: math.cos((u / T + off) / (1 + off) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 500, 900):
        assert s.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert s.betas.max().item() == pytest.approx(0.999)


def test_sigmoid_is_a_valid_schedule():
    s = schedules.sigmoid(num_steps=1000)
    assert bool((s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all())
    assert 0.99 < s.alphas_cumprod[0].item() <= 1 and s.alphas_cumprod[-1].item() < 1e-3


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_derived_quantities(name):
    s = schedules.build(name, 200)
    ac, acp, b = s.alphas_cumprod, s.alphas_cumprod_prev, s.betas
    assert torch.allclose(ac, torch.cumprod(1 - b, 0))
    assert acp[0] == 1 and torch.allclose(acp[1:], ac[:-1])
    assert torch.allclose(s.posterior_variance, b * (1 - acp) / (1 - ac))
    assert s.posterior_variance[0] == 0
    assert s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1]
    assert torch.allclose(s.snr, ac / (1 - ac))
    assert bool((s.snr[1:] < s.snr[:-1]).all())


def test_gather_broadcasts_per_sample():
    s = schedules.linear(10)
    x = torch.zeros(3, 2, 4, 4, dtype=torch.float32)
    g = schedules.gather(s.betas, torch.tensor([0, 5, 9]), x)
    assert g.shape == (3, 1, 1, 1) and g.dtype == torch.float32
    assert torch.allclose(g.flatten().double(), s.betas[[0, 5, 9]].float().double())


def test_bad_schedules_are_rejected():
    with pytest.raises(ValueError):
        schedules.Schedule(torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError):
        schedules.build("quadratic")
