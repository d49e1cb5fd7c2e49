"""Samplers against closed forms: for Gaussian data N(μ, s²) the exact denoiser is known, so every sampler with
enough steps must return the data's mean and spread; deterministic ones converge at their order; DDIM inversion
round-trips; guidance, learned variance, parameterisations and randomness behave as documented."""
import math

import pytest
import torch

from analytic import gaussian_denoiser
from ddpmkit import Denoiser, schedules
from ddpmkit.samplers import (SAMPLERS, ddim_invert, ddim_invert_step, ddim_step, sample, sample_ddim,
                              schedule_sigmas)

MU, SD = 0.3, 0.5
S = schedules.linear(1000)
N_SAMPLES, SHAPE = 4000, (1, 2, 2)   # 16,000 independent values per run
# Standard errors for 16,000 N(μ, s²) values: s/√n = 0.0040 for the mean, s/√(2n) = 0.0028 for the std.
SE_MEAN, SE_STD = SD / math.sqrt(N_SAMPLES * 4), SD / math.sqrt(2 * N_SAMPLES * 4)



def exact_net(s, mu, sd, prediction="eps"):
    """The exact MMSE prediction for N(mu, sd²) data, also at fractional t: σ(t) is log-linear between training
    levels, the inverse of ``sigma_to_t`` (so σ-space samplers get the true answer at their level)."""
    log_table = schedule_sigmas(s).log()

    def net(x, t, cond=None):
        t = t.double().cpu()
        lo = t.floor().long().clamp(max=len(log_table) - 2)
        w = t - lo
        sigma = (log_table[lo] * (1 - w) + log_table[lo + 1] * w).exp().reshape(-1, *[1] * (x.ndim - 1))
        ab = 1.0 / (1.0 + sigma ** 2)
        xd = x.double()
        eps = (1 - ab).sqrt() * (xd - ab.sqrt() * mu) / (ab * sd ** 2 + 1 - ab)
        x0 = (xd - (1 - ab).sqrt() * eps) / ab.sqrt()
        out = {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[prediction]
        return out.to(x.dtype)

    return net


def denoiser_for(sampler, prediction="eps", variance="fixed_small", mu=MU):
    if sampler in ("heun", "euler") or prediction != "eps":
        return Denoiser(exact_net(S, mu, SD, prediction), S, prediction, variance)
    return gaussian_denoiser(S, mu, SD, variance)        # the shared helper; integer timesteps only


def x_T(n=N_SAMPLES, seed=0):
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_fractional_exact_net_matches_the_shared_helper_on_integer_steps():
    x, t = x_T(8), torch.tensor([0, 1, 17, 500, 998, 999, 250, 3])
    assert torch.allclose(exact_net(S, MU, SD)(x, t), gaussian_denoiser(S, MU, SD)(x, t), atol=1e-12)


# (sampler, steps, options, std tolerance). The std tolerance is 5 standard errors plus the sampler's own bias at
# that step count, measured on the exact linear map (x_T = 0 and 1): ancestral with respaced fixed-small
# variance is -0.015 at 250 steps (β̃ is the lower bound of the optimal variance, Bao et al. 2022); DDIM/Euler
# (first order) ≈ -0.005 at 200; DPM-Solver++(2M) +0.001 at 50; Heun +0.005 at 40 levels.
CASES = [
    ("ddpm", 250, {}, 5 * SE_STD + 0.015),
    ("ddim", 200, {}, 5 * SE_STD + 0.006),
    ("ddim", 250, {"eta": 1.0}, 5 * SE_STD + 0.015),
    ("dpmpp-2m", 50, {}, 5 * SE_STD + 0.003),
    ("heun", 40, {}, 5 * SE_STD + 0.006),
    ("heun", 40, {"churn": 5.0}, 5 * SE_STD + 0.01),
    ("euler", 200, {}, 5 * SE_STD + 0.008),
]


@pytest.mark.parametrize("sampler,steps,options,std_tol", CASES)
def test_every_sampler_reproduces_gaussian_mean_and_std(sampler, steps, options, std_tol):
    out = sample(denoiser_for(sampler), x_T(), sampler, steps, clip_x0=False,
                 generator=torch.Generator().manual_seed(1), **options)
    assert abs(out.mean().item() - MU) < 5 * SE_MEAN + 0.002      # + |√ᾱ_T μ s| from x_T ~ N(0, I) exactly
    assert abs(out.std().item() - SD) < std_tol


@pytest.mark.parametrize("sampler,spacing,lo,hi", [
    ("ddim", "trailing", 0.4, 0.6), ("euler", "karras", 0.4, 0.6),        # first order: error halves
    ("heun", "karras", 0.15, 0.3), ("dpmpp-2m", "karras", 0.15, 0.3),     # second order: error quarters
])
def test_deterministic_samplers_converge_at_their_order(sampler, spacing, lo, hi):
    """With x_T = 0 and 1 the sample map is exactly affine, so the std error is pure discretisation error."""
    x = torch.tensor([0.0, 1.0], dtype=torch.float64).reshape(2, 1, 1, 1)
    d = denoiser_for(sampler)

    def std_error(k):
        out = sample(d, x, sampler, k, clip_x0=False, spacing=spacing)
        return (out[1] - out[0]).item() - SD

    e20, e40 = std_error(20), std_error(40)
    assert lo < e40 / e20 < hi


def test_ddim_with_eta_one_is_the_respaced_ancestral_sampler():
    d, x = gaussian_denoiser(S, MU, SD), x_T(64)
    a = sample(d, x, "ddpm", 25, clip_x0=False, generator=torch.Generator().manual_seed(3))
    b = sample(d, x, "ddim", 25, eta=1.0, clip_x0=False, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, atol=1e-10)


def test_ddim_invert_step_is_the_exact_inverse_of_ddim_step():
    x, out = x_T(16), 0.3 * x_T(16, seed=5)
    for t, t_prev in [(999, 899), (120, 7), (0, -1)]:
        x_prev, _ = ddim_step(S, out, t, t_prev, x, clip_x0=False)
        back, _ = ddim_invert_step(S, out, t_prev, t, x_prev)
        assert torch.allclose(back, x, atol=1e-10)


def test_ddim_inversion_then_sampling_returns_x0():
    d = gaussian_denoiser(S, MU, SD)
    x0 = MU + SD * x_T(512, seed=7)

    def rms_roundtrip(k, iters=0):
        xt = ddim_invert(d, x0, k, fixed_point_iters=iters)
        return (sample_ddim(d, xt, k, clip_x0=False) - x0).pow(2).mean().sqrt().item(), xt

    e50, xt = rms_roundtrip(50)
    e100, _ = rms_roundtrip(100)
    assert e50 < 0.05 and 0.4 < e100 / e50 < 0.6      # plain inversion: O(1/K), measured 0.031 at 50 steps
    assert abs(xt.std().item() - 1.0) < 0.05          # and lands on the prior's spread
    exact, _ = rms_roundtrip(50, iters=5)
    assert exact < 1e-5                                # fixed-point inversion: measured 3e-7


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp-2m", "heun", "euler"])
@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_parameterisations_give_the_same_samples(sampler, prediction):
    x = x_T(32)
    ref = sample(denoiser_for(sampler, "eps"), x, sampler, 10, clip_x0=False)
    out = sample(denoiser_for(sampler, prediction), x, sampler, 10, clip_x0=False)
    assert torch.allclose(out, ref, atol=1e-8)


def _with_variance_channels(d, value):
    def net(x, t, cond=None):
        eps = d(x, t, cond)
        return torch.cat([eps, value(x)], dim=1)
    return Denoiser(net, d.schedule, d.prediction, "learned")


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_learned_variance_models_sample(sampler):
    """Deterministic samplers read only the mean channels; the ancestral one with v = -1 is fixed-small."""
    d = denoiser_for(sampler)
    junk = _with_variance_channels(d, lambda x: -1.0 + 0.0 * x if sampler == "ddpm" else torch.sin(7 * x))
    x = x_T(32)
    a = sample(d, x, sampler, 8, generator=torch.Generator().manual_seed(2))
    b = sample(junk, x, sampler, 8, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("sampler,steps", [("ddpm", 100), ("ddim", 50), ("dpmpp-2m", 20), ("heun", 20),
                                           ("euler", 50)])
def test_guidance_through_every_sampler(sampler, steps):
    """Classifier-free guidance ε̂ = ε̂_u + w (ε̂_c - ε̂_u) between two Gaussians of equal spread is exactly the
    Gaussian with mean μ_u + w (μ_c - μ_u): with w = 2 the samples move from 0.1 to 0.5, and ``cond`` (here w)
    must reach the network through the sampler."""
    uncond, conditional = exact_net(S, 0.1, SD), exact_net(S, 0.3, SD)

    def guided(x, t, cond):
        e_u = uncond(x, t)
        return e_u + cond * (conditional(x, t) - e_u)

    d = Denoiser(guided, S)
    out = sample(d, x_T(1000), sampler, steps, cond=2.0, clip_x0=False, generator=torch.Generator().manual_seed(4))
    # 4,000 values: 5 SE = 0.040 for the mean, 0.028 for the std, plus up to 0.03 bias (ancestral, 100 steps).
    assert abs(out.mean().item() - 0.5) < 0.045
    assert abs(out.std().item() - SD) < 0.06


@pytest.mark.parametrize("sampler,options", [("ddpm", {}), ("ddim", {"eta": 0.5}), ("dpmpp-2m", {}), ("heun", {}),
                                             ("euler", {"churn": 2.0})])
def test_callback_shape_clipping_and_generator(sampler, options):
    d, x = denoiser_for(sampler), 2.0 * x_T(16)
    states = []
    rng_before = torch.random.get_rng_state()
    out = sample(d, x, sampler, 6, callback=states.append, generator=torch.Generator().manual_seed(9), **options)
    assert torch.equal(torch.random.get_rng_state(), rng_before)          # the global RNG is never touched
    assert [st["i"] for st in states] == list(range(6))
    assert all(set(st) == {"i", "t", "x", "x0_pred"} for st in states)
    assert all(float(st["x0_pred"].abs().max()) <= 1.0 for st in states)  # clip_x0 defaults to True
    assert torch.equal(states[-1]["x"], out)
    again = sample(d, x, sampler, 6, generator=torch.Generator().manual_seed(9), **options)
    assert torch.equal(out, again)
    if sampler in ("ddpm", "ddim", "euler"):   # the stochastic ones depend on the seed
        other = sample(d, x, sampler, 6, generator=torch.Generator().manual_seed(10), **options)
        assert not torch.allclose(out, other)


def test_dispatcher_errors_name_the_fix():
    d, x = denoiser_for("ddim"), x_T(2)
    with pytest.raises(ValueError, match="choose one of ddpm, ddim, dpmpp-2m, heun, euler"):
        sample(d, x, "plms", 10)
    with pytest.raises(ValueError, match="eta applies to the ddim sampler only"):
        sample(d, x, "dpmpp-2m", 10, eta=0.5)
    with pytest.raises(ValueError, match="churn options are for heun and euler"):
        sample(d, x, "ddim", 10, churn=1.0)
    with pytest.raises(ValueError, match="unknown spacing"):
        sample(d, x, "ddim", 10, spacing="cosine")
    with pytest.raises(ValueError, match="needs noise"):
        ddim_step(S, x, 500, 400, x, eta=1.0)
