import math

import numpy as np
import pytest
import torch

from analytic import gaussian_denoiser
from ddpmkit import Denoiser, schedules
from ddpmkit import diffusion as D
from ddpmkit.losses import LossSecondMomentSampler, UniformSampler, diffusion_losses


def test_simple_loss_is_the_mse_on_each_target():
    s = schedules.linear(100)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(4, 1, 4, 4, generator=g) * 2 - 1, torch.randn(4, 1, 4, 4, generator=g)
    t = torch.tensor([0, 10, 50, 99])
    const = torch.full((4, 1, 4, 4), 0.25)
    for prediction, target in (("eps", noise), ("x0", x0), ("v", D.v_from_x0_eps(s, x0, t, noise))):
        den = Denoiser(lambda x, tt: const, s, prediction)
        terms = diffusion_losses(den, x0, t, noise)
        assert terms["loss"].shape == (4,)
        assert torch.allclose(terms["loss"], ((const - target) ** 2).mean(dim=(1, 2, 3)))


@pytest.mark.parametrize("t", [100, 500])
def test_exact_denoiser_has_a_smaller_vlb_term_than_a_wrong_one(t):
    s = schedules.linear(1000)
    g = torch.Generator().manual_seed(1)
    x0 = 0.3 + 0.5 * torch.randn(512, 1, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    tt = torch.full((512,), t)
    good = diffusion_losses(gaussian_denoiser(s, 0.3, 0.5), x0, tt, noise, loss_type="vlb")["vlb"]
    bad = diffusion_losses(gaussian_denoiser(s, -0.3, 0.5), x0, tt, noise, loss_type="vlb")["vlb"]
    assert bad.mean() > 1.3 * good.mean()   # measured ratios: 1.46 at t = 100, 2.4 at t = 500


def test_hybrid_bound_trains_only_the_variance_channels():
    """Nichol & Dhariwal: in L_hybrid the mean is held fixed inside L_vlb (stop-gradient)."""
    s = schedules.linear(1000)
    g = torch.Generator().manual_seed(2)
    x0, noise = torch.rand(8, 1, 4, 4, generator=g) * 2 - 1, torch.randn(8, 1, 4, 4, generator=g)
    t = torch.randint(1, 1000, (8,), generator=g)
    mean_p = torch.zeros(8, 1, 4, 4, requires_grad=True)
    var_p = torch.zeros(8, 1, 4, 4, requires_grad=True)
    den = Denoiser(lambda x, tt: torch.cat([mean_p, var_p], 1), s, "eps", "learned")
    terms = diffusion_losses(den, x0, t, noise, loss_type="hybrid")
    terms["vlb"].sum().backward(retain_graph=True)
    assert mean_p.grad is None or mean_p.grad.abs().max() == 0
    assert var_p.grad.abs().max() > 0
    expect = terms["mse"] + 0.001 * 1000 * terms["vlb"]
    assert torch.allclose(terms["loss"], expect)


def test_uniform_sampler_weights_are_one():
    t, w = UniformSampler(50).sample(1000, torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() < 50 and torch.allclose(w, torch.ones(1000))


def test_second_moment_sampler_is_uniform_until_warm_then_proportional():
    T = 4
    sm = LossSecondMomentSampler(T, history=3, uniform_prob=0.0)
    assert np.allclose(sm.weights(), 0.25)
    for _ in range(3):
        sm.update(torch.arange(T), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert np.allclose(sm.weights(), np.array([1, 2, 3, 4]) / 10)
    # importance weights 1/(T p_t) keep E[w L] equal to the uniform mean of L
    t, w = sm.sample(200000, torch.Generator().manual_seed(0))
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0])[t]
    assert (w * losses).mean().item() == pytest.approx(2.5, rel=0.01)
    state = sm.state_dict()
    sm2 = LossSecondMomentSampler(T, history=3, uniform_prob=0.0)
    sm2.load_state_dict(state)
    assert np.allclose(sm2.weights(), sm.weights())


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weighting_is_min_snr_gamma_in_x0_space(prediction):
    """Hang et al.: the weighted loss equals min(SNR, γ)·‖x̂_0 − x_0‖² whatever the network predicts, so low-noise
    steps (SNR > γ) are down-weighted and high-noise ones keep their x_0-space weight."""
    from ddpmkit.diffusion import predict_x0_eps
    from ddpmkit.losses import diffusion_losses
    s = schedules.linear(1000)
    torch.manual_seed(0)
    x0, noise = torch.randn(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    t = torch.tensor([0, 10, 100, 300, 600, 999])
    out = torch.randn(6, 1, 4, 4)
    den = Denoiser(lambda x, tt: out, s, prediction)
    got = diffusion_losses(den, x0, t, noise, snr_gamma=5.0)["loss"]
    x_t = D.q_sample(s, x0, t, noise)
    x0_hat, _ = predict_x0_eps(s, prediction, out, x_t, t)
    snr = torch.as_tensor(s.snr)[t]
    expected = snr.clamp(max=5.0) * ((x0_hat - x0) ** 2).double().mean(dim=(1, 2, 3))
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-6)
    plain = diffusion_losses(den, x0, t, noise)["loss"]
    assert not torch.allclose(plain, got)
