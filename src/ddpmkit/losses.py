"""Per-sample training losses [N] (Ho et al. 2020; Nichol & Dhariwal 2021) and timestep samplers.

A loss returns one value per sample; weighting by the timestep sampler happens outside it.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from .denoiser import Denoiser
from .diffusion import mean_flat, q_sample, split_output, training_target, vlb_terms_bpd

LossType = Literal["simple", "vlb", "hybrid"]
LOSS_TYPES: tuple[str, ...] = ("simple", "vlb", "hybrid")


def min_snr_weight(s, t: torch.Tensor, prediction: str, gamma: float) -> torch.Tensor:
    """Min-SNR-γ weights (Hang et al. 2023) [N]: the x_0-space loss weight min(SNR_t, γ), expressed for the target the
    network predicts: min(SNR, γ)/SNR for ε, min(SNR, γ) for x_0, min(SNR, γ)/(SNR + 1) for v."""
    snr = torch.as_tensor(s.snr, dtype=torch.float64)[t.cpu()].to(t.device)
    clipped = snr.clamp(max=gamma)
    w = {"eps": clipped / snr, "x0": clipped, "v": clipped / (snr + 1.0)}[prediction]
    return w.float()


def diffusion_losses(denoiser: Denoiser, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, cond: Any = None,
                     loss_type: str = "simple", vlb_weight: float = 0.001,
                     snr_gamma: float | None = None) -> dict[str, torch.Tensor]:
    """{"loss", "mse", "vlb"} per sample.

    L_simple: MSE between the mean channels and the target (ε, x_0 or v), Ho et al. eq. (14); with ``snr_gamma``
    each sample's MSE is weighted by Min-SNR-γ (``min_snr_weight``), which stops the many easy low-noise steps from
    dominating training.
    L_vlb: the bound's term L_t in bits/dim (decoder at t = 0, KL otherwise).
    hybrid: L_simple + λ·L_vlb with λ = 0.001, where L_vlb = T·L_t estimates the whole bound, and the mean held
    fixed (stop-gradient) inside the bound so it only trains the variance (Nichol & Dhariwal §3.1).
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss {loss_type!r}: choose one of {', '.join(LOSS_TYPES)}")
    s = denoiser.schedule
    x_t = q_sample(s, x0, t, noise)
    out = denoiser(x_t, t, cond).float()
    pred, var = split_output(out, x0.shape[1], denoiser.variance)
    mse = mean_flat((pred - training_target(s, denoiser.prediction, x0, t, noise)) ** 2)
    terms = {"mse": mse}
    if snr_gamma is not None:
        mse = mse * min_snr_weight(s, t, denoiser.prediction, snr_gamma)
    if loss_type == "simple":
        terms["vlb"] = torch.zeros_like(mse)
        terms["loss"] = mse
        return terms
    if loss_type == "hybrid":
        frozen = pred.detach() if var is None else torch.cat([pred.detach(), var], dim=1)
        vlb = vlb_terms_bpd(s, frozen, x0, x_t, t, denoiser.prediction, denoiser.variance)
        terms["vlb"] = vlb
        terms["loss"] = mse + vlb_weight * s.num_steps * vlb
    else:
        vlb = vlb_terms_bpd(s, out, x0, x_t, t, denoiser.prediction, denoiser.variance)
        terms["vlb"] = vlb
        terms["loss"] = vlb
    return terms


class UniformSampler:
    """t ~ U{0..T-1}, weights 1."""

    def __init__(self, num_steps: int):
        self.num_steps = num_steps

    def weights(self) -> np.ndarray:
        return np.full(self.num_steps, 1.0 / self.num_steps)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.as_tensor(self.weights(), dtype=torch.float64)
        t = torch.multinomial(p, batch, replacement=True, generator=generator)
        w = 1.0 / (self.num_steps * p[t])
        return t, w.float()

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Uniform sampling learns nothing from the losses."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class LossSecondMomentSampler(UniformSampler):
    """Importance sampling for L_vlb (Nichol & Dhariwal eq. 18): p_t ∝ √E[L_t²], estimated from the last
    ``history`` losses of each t; uniform until every t has that many; mixed with ``uniform_prob`` of uniform."""

    def __init__(self, num_steps: int, history: int = 10, uniform_prob: float = 0.001):
        super().__init__(num_steps)
        self.history, self.uniform_prob = history, uniform_prob
        self.losses = np.zeros((num_steps, history), dtype=np.float64)
        self.counts = np.zeros(num_steps, dtype=np.int64)

    def weights(self) -> np.ndarray:
        if not (self.counts == self.history).all():
            return np.full(self.num_steps, 1.0 / self.num_steps)
        w = np.sqrt(np.mean(self.losses ** 2, axis=-1))
        w = w / w.sum()
        return w * (1 - self.uniform_prob) + self.uniform_prob / self.num_steps

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        for ti, li in zip(t.tolist(), losses.detach().double().tolist()):
            if self.counts[ti] == self.history:
                self.losses[ti, :-1] = self.losses[ti, 1:]
                self.losses[ti, -1] = li
            else:
                self.losses[ti, self.counts[ti]] = li
                self.counts[ti] += 1

    def state_dict(self) -> dict:
        return {"losses": torch.from_numpy(self.losses.copy()), "counts": torch.from_numpy(self.counts.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.losses = state["losses"].numpy().astype(np.float64)
        self.counts = state["counts"].numpy().astype(np.int64)


def make_timestep_sampler(name: str, num_steps: int) -> UniformSampler:
    if name == "uniform":
        return UniformSampler(num_steps)
    if name == "loss-second-moment":
        return LossSecondMomentSampler(num_steps)
    raise ValueError(f"unknown timestep sampler {name!r}: choose uniform or loss-second-moment")
