"""Step functions agree with diffusers' schedulers (a test-only dependency) on the same betas, grids and model
outputs: both are driven by one deterministic toy model of (x, t), and the trajectories are compared step by step.

diffusers conventions matched here: trained_betas = our float64 betas (diffusers holds them in float32, hence
agreement to ~1e-6, not 1e-12); steps_offset = 0; set_alpha_to_one = True (ᾱ_{-1} = 1); no clipping
(clip_sample=False vs clip_x0=False); final_sigmas_type = "zero"; σ-space samples are x_σ = x_t·√(1+σ²), and
scale_model_input divides by √(1+σ²) again before the model sees them. DDIMScheduler computes the previous
timestep as t - T//K, which is right only when K divides T and the spacing is leading or trailing, so DDIM is
compared on those grids.
"""
import math

import pytest
import torch

from ddpmkit import Denoiser, schedules
from ddpmkit.samplers import (ddim_step, dpmpp_2m_step, iterate_euler, iterate_heun, make_sigmas, make_timesteps,
                              previous_timesteps, schedule_sigmas, sigma_to_t)

diffusers = pytest.importorskip("diffusers")

T = 1000
S = schedules.linear(T)
TOL = 1e-5



def toy_model(prediction="eps"):
    """A smooth nonlinear stand-in for a network, continuous in real t (σ-space samplers ask at fractional t):
    roughly the ε of N(0.3, 0.5²) data plus an (x, t)-dependent wobble, or a bounded x̂_0 for x0-prediction."""

    def net(x, t, cond=None):
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1, 1, 1).to(x.dtype)
        wobble = 0.1 * torch.sin(3.0 * x + t / 200.0)
        if prediction == "x0":
            return 0.8 * torch.tanh(x) + 0.3 * torch.cos(t / 150.0) + wobble
        u = t / 1000.0                                  # ≈ √(1 - ᾱ) at the top of the linear schedule
        return u * (x - 0.3 * (1 - u)) / (0.25 + 0.75 * u ** 2) ** 0.5 + wobble

    return net


DIFFUSERS_PREDICTION = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}


def x_T(n=6):
    return torch.randn(n, 1, 2, 2, generator=torch.Generator().manual_seed(0))


def common(prediction="eps"):
    return dict(num_train_timesteps=T, trained_betas=S.betas.numpy(), prediction_type=DIFFUSERS_PREDICTION[prediction])


def close(ours, theirs):
    err = (ours.double() - theirs.double()).abs().max().item()
    assert err < TOL, f"max difference {err:.2e}"


@pytest.mark.parametrize("spacing,k", [("trailing", 10), ("leading", 10), ("trailing", 50), ("leading", 25)])
@pytest.mark.parametrize("eta", [0.0, 0.7])
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_ddim_matches_diffusers(spacing, k, eta, prediction):
    sched = diffusers.DDIMScheduler(**common(prediction), clip_sample=False, set_alpha_to_one=True, steps_offset=0,
                                    timestep_spacing=spacing)
    sched.set_timesteps(k)
    ts = make_timesteps(S, k, spacing)
    assert sched.timesteps.tolist() == ts.tolist()
    model, gen = toy_model(prediction), torch.Generator().manual_seed(1)
    ours = theirs = x_T()
    for t, t_prev in zip(ts.tolist(), previous_timesteps(ts).tolist()):
        noise = torch.randn(ours.shape, generator=gen)
        ours, _ = ddim_step(S, model(ours, torch.tensor([t])), t, t_prev, ours, eta=eta, noise=noise,
                            prediction=prediction, clip_x0=False)
        theirs = sched.step(model(theirs, torch.tensor([t])), t, theirs, eta=eta, variance_noise=noise).prev_sample
        close(ours, theirs)


def test_ddim_clipping_matches_diffusers_with_clipped_model_output():
    """clip_x0 re-derives ε̂ from the clipped x̂_0 (improved-diffusion), diffusers' use_clipped_model_output=True."""
    sched = diffusers.DDIMScheduler(**common(), clip_sample=True, set_alpha_to_one=True, timestep_spacing="trailing")
    sched.set_timesteps(10)
    model, ours, theirs = toy_model(), 3 * x_T(), 3 * x_T()
    ts = make_timesteps(S, 10, "trailing")
    for t, t_prev in zip(ts.tolist(), previous_timesteps(ts).tolist()):
        ours, x0 = ddim_step(S, model(ours, torch.tensor([t])), t, t_prev, ours, clip_x0=True)
        theirs = sched.step(model(theirs, torch.tensor([t])), t, theirs, use_clipped_model_output=True).prev_sample
        close(ours, theirs)
    assert float(x0.abs().max()) <= 1.0


@pytest.mark.parametrize("spacing,k", [("trailing", 10), ("trailing", 7), ("linspace", 12), ("karras", 15)])
@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_dpmpp_2m_matches_diffusers(spacing, k, prediction):
    sched = diffusers.DPMSolverMultistepScheduler(**common(prediction), algorithm_type="dpmsolver++", solver_order=2,
                                                  solver_type="midpoint", lower_order_final=True,
                                                  final_sigmas_type="zero", timestep_spacing="trailing")
    ts = make_timesteps(S, k, spacing)
    if spacing == "trailing":
        sched.set_timesteps(k)
    else:   # diffusers' own linspace drops t = 0 and its Karras grid rounds t but not σ; give it our grid
        sched.set_timesteps(timesteps=ts.tolist())
        # These grids end at t = 0, where diffusers' float32 σ_0 = √((1-ᾱ_0)/ᾱ_0) loses ~3e-4 to cancellation
        # (1 - 0.9999); hand it σ computed in float64 so the comparison tests the update, not that rounding.
        assert torch.allclose(sched.sigmas[:-1].double(), schedule_sigmas(S)[ts], rtol=1e-3)
        sched.sigmas = torch.cat([schedule_sigmas(S)[ts], torch.zeros(1, dtype=torch.float64)]).float()
    assert sched.timesteps.tolist() == ts.tolist()
    model, last = toy_model(prediction), None
    ours = theirs = x_T()
    for t, t_prev in zip(ts.tolist(), previous_timesteps(ts).tolist()):
        ours, x0 = dpmpp_2m_step(S, model(ours, torch.tensor([t])), t, t_prev, ours, last=last,
                                 prediction=prediction, clip_x0=False)
        last = (x0, t)
        theirs = sched.step(model(theirs, torch.tensor([t])), t, theirs).prev_sample
        close(ours, theirs)


def _diffusers_sigma_scheduler(cls, spacing, k, prediction, sigmas, heun=False):
    """diffusers' Euler/Heun scheduler on the same grid. It builds its σ in float32, where σ_0 = √((1-ᾱ_0)/ᾱ_0)
    loses ~3e-4 to cancellation (1 - 0.9999) and the Karras grid inherits it through σ_min; after checking its grid
    is ours to that precision we hand it our float64 σ (cast) so that the comparison tests the steps."""
    karras = spacing == "karras"
    sched = cls(**common(prediction), timestep_spacing="linspace" if karras else spacing, use_karras_sigmas=karras,
                steps_offset=0)
    sched.set_timesteps(k)
    t = sigma_to_t(S, sigmas[:-1])
    if heun:   # diffusers' Heun lists the levels of the correction evaluations twice
        assert torch.allclose(sched.sigmas.double().unique_consecutive(), sigmas, rtol=1e-3)
        sched.sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]]).float()
        t = torch.cat([t[:1], t[1:].repeat_interleave(2)])
    else:
        assert torch.allclose(sched.sigmas.double(), sigmas, rtol=1e-3)
    assert torch.allclose(sched.timesteps.double(), t, atol=0.05)     # the fractional timestep of each level
    if not heun:
        sched.sigmas = sigmas.float()
    sched.timesteps = t.float()
    return sched


SIGMA_GRIDS = [("trailing", 10), ("leading", 10), ("linspace", 10), ("karras", 10), ("karras", 7)]


@pytest.mark.parametrize("spacing,k", SIGMA_GRIDS)
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_euler_matches_diffusers(spacing, k, prediction):
    sigmas = make_sigmas(S, k, spacing)
    sched = _diffusers_sigma_scheduler(diffusers.EulerDiscreteScheduler, spacing, k, prediction, sigmas)
    model = toy_model(prediction)
    x = x_T()
    theirs = x * math.sqrt(1 + float(sigmas[0]) ** 2)
    d = Denoiser(model, S, prediction)
    for state, t in zip(iterate_euler(d, x, sigmas, clip_x0=False), sched.timesteps):
        theirs = sched.step(model(sched.scale_model_input(theirs, t), t.reshape(1)), t, theirs).prev_sample
        sigma_next = float(sigmas[state["i"] + 1])
        close(state["x"], theirs / math.sqrt(1 + sigma_next ** 2))


@pytest.mark.parametrize("spacing,k", SIGMA_GRIDS)
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_heun_matches_diffusers(spacing, k, prediction):
    sigmas = make_sigmas(S, k, spacing)
    sched = _diffusers_sigma_scheduler(diffusers.HeunDiscreteScheduler, spacing, k, prediction, sigmas, heun=True)
    model = toy_model(prediction)
    x = x_T()
    theirs = x * math.sqrt(1 + float(sigmas[0]) ** 2)
    done = []                                  # diffusers' sample after each completed step (2 calls, 1 at the end)
    for j, t in enumerate(sched.timesteps):
        theirs = sched.step(model(sched.scale_model_input(theirs, t), t.reshape(1)), t, theirs).prev_sample
        if j % 2 == 1 or j == len(sched.timesteps) - 1:
            done.append(theirs)
    states = list(iterate_heun(Denoiser(model, S, prediction), x, sigmas, clip_x0=False))
    assert len(states) == len(done) == k
    for state, theirs in zip(states, done):
        sigma_next = float(sigmas[state["i"] + 1])
        close(state["x"], theirs / math.sqrt(1 + sigma_next ** 2))
