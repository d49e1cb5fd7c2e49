"""Pure Gaussian math of the forward and reverse processes (Ho et al. 2020; Nichol & Dhariwal 2021).

No nn.Module and no training loop: every function maps tensors to tensors, given a ``Schedule``.
Timesteps ``t`` are integer tensors [N] (or ints) in [0, T-1]; ``t_prev = -1`` means "the clean image x_0".
"""
from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

from .schedules import Schedule, gather

Prediction = Literal["eps", "x0", "v"]
Variance = Literal["fixed_small", "fixed_large", "learned"]
PREDICTIONS: tuple[str, ...] = ("eps", "x0", "v")
VARIANCES: tuple[str, ...] = ("fixed_small", "fixed_large", "learned")


# --- forward process -------------------------------------------------------------------------------------------------

def q_sample(s: Schedule, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
    """Ho et al. eq. (4): x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε."""
    return gather(s.sqrt_alphas_cumprod, t, x0) * x0 + gather(s.sqrt_one_minus_alphas_cumprod, t, x0) * noise


def q_mean_variance(s: Schedule, x0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and log-variance of q(x_t | x_0)."""
    ac = gather(s.alphas_cumprod, t, x0)
    return ac.sqrt() * x0, (1.0 - ac).expand_as(x0), torch.log1p(-ac).expand_as(x0)


def q_posterior(s: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ho et al. eq. (6)-(7): mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
    mean = gather(s.posterior_mean_coef1, t, x_t) * x0 + gather(s.posterior_mean_coef2, t, x_t) * x_t
    return mean, gather(s.posterior_variance, t, x_t), gather(s.posterior_log_variance_clipped, t, x_t)


# --- parameterisations: ε ↔ x_0 ↔ v (Salimans & Ho 2022 for v) ------------------------------------------------------

def x0_from_eps(s: Schedule, x_t, t, eps):
    return (x_t - gather(s.sqrt_one_minus_alphas_cumprod, t, x_t) * eps) / gather(s.sqrt_alphas_cumprod, t, x_t)


def eps_from_x0(s: Schedule, x_t, t, x0):
    return (x_t - gather(s.sqrt_alphas_cumprod, t, x_t) * x0) / gather(s.sqrt_one_minus_alphas_cumprod, t, x_t)


def v_from_x0_eps(s: Schedule, x0, t, eps):
    """v = √ᾱ ε − √(1−ᾱ) x_0."""
    return gather(s.sqrt_alphas_cumprod, t, x0) * eps - gather(s.sqrt_one_minus_alphas_cumprod, t, x0) * x0


def x0_from_v(s: Schedule, x_t, t, v):
    return gather(s.sqrt_alphas_cumprod, t, x_t) * x_t - gather(s.sqrt_one_minus_alphas_cumprod, t, x_t) * v


def eps_from_v(s: Schedule, x_t, t, v):
    return gather(s.sqrt_one_minus_alphas_cumprod, t, x_t) * x_t + gather(s.sqrt_alphas_cumprod, t, x_t) * v


def training_target(s: Schedule, prediction: str, x0, t, noise) -> torch.Tensor:
    """What the network regresses for the chosen parameterisation."""
    if prediction == "eps":
        return noise
    if prediction == "x0":
        return x0
    if prediction == "v":
        return v_from_x0_eps(s, x0, t, noise)
    raise ValueError(f"unknown prediction {prediction!r}: choose one of {', '.join(PREDICTIONS)}")


def split_output(model_output: torch.Tensor, channels: int, variance: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The network's output is [mean parameter | variance parameter] along channels for learned variance."""
    if variance == "learned":
        if model_output.shape[1] != 2 * channels:
            raise ValueError(f"learned variance needs {2 * channels} output channels, got {model_output.shape[1]}")
        return model_output[:, :channels], model_output[:, channels:]
    if model_output.shape[1] != channels:
        raise ValueError(f"expected {channels} output channels, got {model_output.shape[1]}")
    return model_output, None


def threshold_x0(x0: torch.Tensor, clip: bool | float) -> torch.Tensor:
    """Keep x̂_0 in the data range. ``clip``: False (leave it), True (clamp to [-1, 1], Ho et al.) or a percentile p
    in (0, 1) for Imagen's dynamic thresholding (Saharia et al. 2022): per sample s = max(1, p-quantile of |x̂_0|),
    then x̂_0 ← clamp(x̂_0, −s, s) / s, which pulls saturated pixels inwards at high guidance scales."""
    if isinstance(clip, bool) or clip is None:
        return x0.clamp(-1.0, 1.0) if clip else x0
    p = float(clip)
    if not 0.0 < p < 1.0:
        raise ValueError(f"dynamic thresholding percentile must be in (0, 1), got {clip!r} (Imagen uses 0.995)")
    scale = torch.quantile(x0.detach().abs().flatten(1).float(), p, dim=1).clamp(min=1.0).to(x0.dtype)
    scale = scale.view(-1, *([1] * (x0.ndim - 1)))
    return x0.clamp(-scale, scale) / scale


def predict_x0_eps(s: Schedule, prediction: str, pred: torch.Tensor, x_t, t,
                   clip_x0: bool | float = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂_0, ε̂) from the network's mean parameter. With ``clip_x0`` (True, or a dynamic-thresholding percentile,
    see ``threshold_x0``), x̂_0 is brought into [-1, 1] and ε̂ re-derived from it, so both describe the same
    denoised image (improved-diffusion)."""
    if prediction == "eps":
        x0, eps = x0_from_eps(s, x_t, t, pred), pred
    elif prediction == "x0":
        x0, eps = pred, eps_from_x0(s, x_t, t, pred)
    elif prediction == "v":
        x0, eps = x0_from_v(s, x_t, t, pred), eps_from_v(s, x_t, t, pred)
    else:
        raise ValueError(f"unknown prediction {prediction!r}: choose one of {', '.join(PREDICTIONS)}")
    if clip_x0 is not False and clip_x0 is not None:
        x0 = threshold_x0(x0, clip_x0)
        eps = eps_from_x0(s, x_t, t, x0)
    return x0, eps


# --- reverse process -------------------------------------------------------------------------------------------------

class PMeanVariance(NamedTuple):
    mean: torch.Tensor
    log_variance: torch.Tensor
    x0_pred: torch.Tensor
    eps_pred: torch.Tensor


def p_mean_variance(s: Schedule, model_output: torch.Tensor, x_t: torch.Tensor, t, t_prev=None,
                    prediction: str = "eps", variance: str = "fixed_small", clip_x0: bool = True) -> PMeanVariance:
    """p(x_{t_prev} | x_t) of the reverse process.

    ``t_prev`` defaults to t - 1. A larger jump (respacing, Nichol & Dhariwal §4) uses the effective
    β = 1 - ᾱ_t / ᾱ_{t_prev} of the kept subsequence, so fixed and learned variances stay correct with few steps.
    Learned variance (Nichol & Dhariwal eq. 15): log σ² = f·log β + (1 - f)·log β̃ with f = (v + 1) / 2.
    """
    n = x_t.shape[0]
    if not torch.is_tensor(t):
        t = torch.full((n,), int(t), dtype=torch.long)
    t = t.long().expand(n) if t.ndim == 0 else t.long()
    if t_prev is None:
        t_prev = t - 1
    elif not torch.is_tensor(t_prev):
        t_prev = torch.full((n,), int(t_prev), dtype=torch.long)
    t_prev = t_prev.long().expand(n) if t_prev.ndim == 0 else t_prev.long()

    pred, var_param = split_output(model_output, x_t.shape[1], variance)
    x0_pred, eps_pred = predict_x0_eps(s, prediction, pred, x_t, t, clip_x0)

    # Posterior coefficients from the pair (ᾱ_t, ᾱ_prev), in float64 on the schedule's device (the CPU), then cast
    # and moved to x_t's device by bc(); t_prev may live on the GPU (t - 1 of a GPU t), so its mask moves too.
    t_prev = t_prev.cpu()
    ab_t, ab_prev = s.alpha_bar(t), s.alpha_bar(t_prev)
    beta = 1.0 - ab_t / ab_prev
    coef1 = beta * ab_prev.sqrt() / (1.0 - ab_t)
    coef2 = (1.0 - ab_prev) * (ab_t / ab_prev).sqrt() / (1.0 - ab_t)
    post_var = beta * (1.0 - ab_prev) / (1.0 - ab_t)
    # At the final step β̃ = 0: clip its log to β̃ of the schedule's second step, as Ho et al. do.
    post_var = torch.where(t_prev < 0, s.posterior_variance[1], post_var)
    log_beta = torch.where(t_prev < 0, s.posterior_variance[1].log(), beta.log())

    def bc(v: torch.Tensor) -> torch.Tensor:
        return v.to(device=x_t.device, dtype=x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))

    mean = bc(coef1) * x0_pred + bc(coef2) * x_t
    log_small = bc(post_var.log())
    if variance == "fixed_small":
        log_var = log_small.expand_as(x_t)
    elif variance == "fixed_large":
        log_var = bc(log_beta).expand_as(x_t)
    elif variance == "learned":
        frac = (var_param + 1.0) / 2.0
        log_var = frac * bc(log_beta) + (1.0 - frac) * log_small
    else:
        raise ValueError(f"unknown variance {variance!r}: choose one of {', '.join(VARIANCES)}")
    return PMeanVariance(mean, log_var, x0_pred, eps_pred)


# --- likelihood terms --------------------------------------------------------------------------------------------

def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Φ(x) by the tanh approximation used in Ho et al.'s code (max abs error ≈ 1e-4, cheap and smooth)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                                        bin_halfwidth: float = 1.0 / 255.0) -> torch.Tensor:
    """log P(x) for x on the 256-level grid in [-1, 1] under N(mean, e^{2 log_scale}), integrated over the
    pixel's bin x ± 1/255; the edge bins extend to ±∞ (Ho et al. §3.3, the decoder L_0). Elementwise, nats."""
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + bin_halfwidth))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - bin_halfwidth))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999, log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log((cdf_plus - cdf_min).clamp(min=1e-12))))
    return log_probs


def prior_bpd(s: Schedule, x0: torch.Tensor) -> torch.Tensor:
    """KL(q(x_T | x_0) || N(0, I)) per sample, in bits per dimension."""
    t = torch.full((x0.shape[0],), s.num_steps - 1, dtype=torch.long)
    mean, _, logvar = q_mean_variance(s, x0, t)
    kl = normal_kl(mean, logvar, torch.zeros_like(mean), torch.zeros_like(mean))
    return mean_flat(kl) / math.log(2.0)


def vlb_terms_bpd(s: Schedule, model_output: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                  prediction: str = "eps", variance: str = "fixed_small") -> torch.Tensor:
    """The bound's term L_t per sample in bits/dim: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0 and the
    discretized decoder -log p(x_0 | x_1) at t = 0 (Ho et al. eq. 5). No x̂_0 clipping: this is the model's density."""
    true_mean, _, true_logvar = q_posterior(s, x0, x_t, t)
    p = p_mean_variance(s, model_output, x_t, t, prediction=prediction, variance=variance, clip_x0=False)
    kl = mean_flat(normal_kl(true_mean, true_logvar, p.mean, p.log_variance)) / math.log(2.0)
    nll = -mean_flat(discretized_gaussian_log_likelihood(x0, p.mean, 0.5 * p.log_variance)) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over all but the batch dimension."""
    return x.reshape(x.shape[0], -1).mean(dim=1)
