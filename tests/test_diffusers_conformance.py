"""Peer conformance: q_sample, the posterior and ddpm_step agree with diffusers' DDPMScheduler to 1e-5."""
import pytest
import torch

from ddpmkit import diffusion as D
from ddpmkit import schedules
from ddpmkit.samplers import ddpm_step

diffusers = pytest.importorskip("diffusers")

PRED = {"eps": "epsilon", "x0": "sample", "v": "v_prediction"}
VAR = {"fixed_small": "fixed_small", "fixed_large": "fixed_large", "learned": "learned_range"}


def reference(variance="fixed_small", prediction="eps", clip=True, float64=True):
    """diffusers' DDPMScheduler for the paper's linear schedule.

    diffusers keeps its tables in float32; at t = 1 its β = 1 - ᾱ_1/ᾱ_0 then cancels to a 4e-5 relative error
    (5e-5 in x_prev). With ``float64`` its tables are recomputed in float64 from the same betas, so the comparison
    tests the algorithm at 1e-5; the stock float32 scheduler is compared too, at the 5e-4 its precision allows (t = 1, learned variance).
    """
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                                  variance_type=VAR[variance], prediction_type=PRED[prediction], clip_sample=clip)
    if float64:
        ref.betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
        ref.alphas = 1.0 - ref.betas
        ref.alphas_cumprod = torch.cumprod(ref.alphas, 0)
        ref.one = torch.tensor(1.0, dtype=torch.float64)
    return ref


def test_q_sample_equals_add_noise():
    s, ref = schedules.linear(1000), reference()
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, 3, 8, 8, generator=g), torch.randn(6, 3, 8, 8, generator=g)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    assert torch.allclose(D.q_sample(s, x0, t, noise), ref.add_noise(x0, noise, t).float(), atol=1e-5)


def test_v_target_equals_get_velocity():
    s, ref = schedules.linear(1000), reference()
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(4, 1, 5, 5, generator=g), torch.randn(4, 1, 5, 5, generator=g)
    t = torch.tensor([0, 7, 300, 999])
    assert torch.allclose(D.v_from_x0_eps(s, x0, t, noise), ref.get_velocity(x0, noise, t).float(), atol=1e-5)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large", "learned"])
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("float64,tol,rtol", [(True, 1e-5, 0.0), (False, 5e-4, 5e-4)])
def test_ddpm_step_equals_scheduler_step(variance, prediction, clip, float64, tol, rtol):
    s, ref = schedules.linear(1000), reference(variance, prediction, clip, float64)
    g = torch.Generator().manual_seed(2)
    c = 3
    for t in (999, 600, 37, 1, 0):
        x_t = torch.randn(4, c, 6, 6, generator=g)
        out = torch.randn(4, 2 * c if variance == "learned" else c, 6, 6, generator=g)
        if variance == "learned":
            out[:, c:] = out[:, c:].tanh()     # the variance interpolation v lies in [-1, 1]
        seed = 100 + t
        want = ref.step(out, t, x_t, generator=torch.Generator().manual_seed(seed))
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(seed))
        x_prev, x0 = ddpm_step(s, out, t, x_t, noise, prediction=prediction, variance=variance, clip_x0=clip)
        assert torch.allclose(x0, want.pred_original_sample.float(), atol=tol, rtol=rtol), (t, "x0")
        assert torch.allclose(x_prev, want.prev_sample.float(), atol=tol, rtol=rtol), (t, "x_prev")


def test_posterior_mean_and_variance_match_scheduler_internals():
    s, ref = schedules.linear(1000), reference(clip=False)
    g = torch.Generator().manual_seed(3)
    x0, x_t = torch.randn(1, 1, 4, 4, generator=g), torch.randn(1, 1, 4, 4, generator=g)
    for t in (1, 250, 999):
        mean, var, _ = D.q_posterior(s, x0, x_t, torch.tensor([t]))
        ab_t, ab_p = ref.alphas_cumprod[t], ref.alphas_cumprod[t - 1]
        beta_t = 1 - ab_t / ab_p
        want_mean = (ab_p.sqrt() * beta_t / (1 - ab_t)) * x0 + ((1 - beta_t).sqrt() * (1 - ab_p) / (1 - ab_t)) * x_t
        assert torch.allclose(mean, want_mean.float(), atol=1e-6)
        assert torch.allclose(var.flatten().double(), ref._get_variance(t).reshape(1).double(), rtol=1e-5)
