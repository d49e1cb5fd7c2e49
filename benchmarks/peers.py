"""Shared helpers for the side-by-side benchmarks: ddpmkit, diffusers and denoising-diffusion-pytorch ("ddp").

Each toolkit gets a network of matched size (±2 % parameters) for two settings, one ε-MSE training step with Adam,
and one DDPM-family sampling loop. Peers are optional: importing this module needs only torch and ddpmkit, and a
missing peer is one clear line (``PeerMissing``). Run it to print the matched parameter counts:

    python benchmarks/peers.py
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
from contextlib import nullcontext
from typing import Callable

import torch
import torch.nn.functional as F

TOOLKITS = ("ddpmkit", "diffusers", "ddp")
NAMES = {"ddpmkit": "ddpmkit", "diffusers": "diffusers", "ddp": "denoising-diffusion-pytorch"}
PIP = {"diffusers": "diffusers", "ddp": "denoising-diffusion-pytorch"}
T = 1000          # training timesteps, linear β from 1e-4 to 0.02 (Ho et al.) in all three
TOLERANCE = 0.02  # matched parameter counts: within ±2 % of ddpmkit's preset

# Per setting: image geometry, and each toolkit's network. diffusers reproduces ddpmkit's layout block for block;
# denoising-diffusion-pytorch's Unet has its own layout (2 ResNet blocks and linear attention per level), so its
# width and multipliers (for mnist-tiny also its attention heads) were searched for the nearest count (see
# ``python benchmarks/peers.py``).
SETTINGS = {
    # ddpmkit's mnist-tiny: 32/64/64 channels, 28 → 14 → 7, attention at 7×7, 8 GroupNorm groups and AdaGN ResBlocks
    # (scale_shift: the time projection gives 2×channels, h = norm2(h)·(1+scale)+shift), 1,191,233 parameters.
    "mnist-tiny": dict(
        size=28, channels=1, dropout=0.0,
        # The same layout in diffusers: 1,191,105 parameters (−0.01 %). With scale_shift its middle attention has no
        # GroupNorm (diffusers' own choice, kept), hence 2×64 fewer weights than ours.
        diffusers=dict(block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=8,
                       resnet_time_scale_shift="scale_shift",
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")),
        # denoising-diffusion-pytorch's ResnetBlocks already condition by scale and shift, so only the count moved:
        # dim=28 (the earlier match) is now −7.5 %. dim must be even (its sinusoidal embedding gives 2·(dim//2)
        # features to a Linear that expects dim), and dim=30 is +5.0 %, so dim and multipliers stay (the same widths
        # and 28 → 14 → 7 levels as before) and the innermost stage, 7×7 with full attention (also the middle
        # attention), gets 8 heads instead of its default 4: 1,190,609 parameters (−0.05 %), the convolutions and the
        # 28×28 and 14×14 linear attention unchanged.
        ddp=dict(dim=28, dim_mults=(1, 2, 2), attn_heads=(4, 4, 8))),
    "ddpm-cifar10": dict(   # Ho et al.'s CIFAR-10 model (google/ddpm-cifar10-32 in diffusers)
        size=32, channels=3, dropout=0.1,
        diffusers=dict(block_out_channels=(128, 256, 256, 256), layers_per_block=2, norm_num_groups=32,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D")),
        ddp=dict(dim=64, dim_mults=(1, 2, 4, 8))),   # the Unet of its README
}


class PeerMissing(RuntimeError):
    pass


def require(toolkit: str):
    """Import a peer or raise PeerMissing with the one line that fixes it."""
    try:
        if toolkit == "diffusers":
            import diffusers
            return diffusers
        if toolkit == "ddp":
            import denoising_diffusion_pytorch
            return denoising_diffusion_pytorch
    except ImportError:
        raise PeerMissing(f"{NAMES[toolkit]} is not installed: pip install {PIP[toolkit]} "
                          f"(or pip install -e '.[bench]')") from None
    import ddpmkit
    return ddpmkit


def preload(toolkit: str) -> None:
    """Import everything a training step of ``toolkit`` touches (so a memory probe starts after imports),
    including what torch imports lazily on a first optimizer step (torch._dynamo, sympy: ~160 MiB)."""
    probe = torch.nn.Conv2d(1, 1, 1)
    opt = torch.optim.Adam(probe.parameters())
    probe(torch.zeros(1, 1, 2, 2)).sum().backward()
    opt.step()
    mod = require(toolkit)
    if toolkit == "ddpmkit":
        for name in ("losses", "nn", "samplers", "schedules"):
            importlib.import_module(f"ddpmkit.{name}")
    elif toolkit == "diffusers":
        mod.UNet2DModel, mod.DDPMScheduler   # diffusers imports lazily, on attribute access
    else:
        mod.Unet, mod.GaussianDiffusion


def available(toolkits=TOOLKITS) -> list[str]:
    """The toolkits that import here; prints one line for each one that does not."""
    out = []
    for tk in toolkits:
        try:
            require(tk)
            out.append(tk)
        except PeerMissing as e:
            print(f"skipping: {e}", file=sys.stderr)
    return out


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(toolkit: str, setting: str) -> torch.nn.Module:
    """The network alone (what the training step and the parameter count see)."""
    s = SETTINGS[setting]
    if toolkit == "ddpmkit":
        from ddpmkit.nn import UNet
        return UNet.from_preset(setting)
    if toolkit == "diffusers":
        UNet2DModel = require("diffusers").UNet2DModel
        return UNet2DModel(sample_size=s["size"], in_channels=s["channels"], out_channels=s["channels"],
                           attention_head_dim=None, dropout=s["dropout"], **s["diffusers"])
    if toolkit == "ddp":
        Unet = require("ddp").Unet
        return Unet(channels=s["channels"], dropout=s["dropout"], **s["ddp"])
    raise ValueError(f"unknown toolkit {toolkit!r}: choose one of {', '.join(TOOLKITS)}")


def ddp_diffusion(net: torch.nn.Module, setting: str, sampling_steps: int | None = None, **kwargs):
    """denoising-diffusion-pytorch's GaussianDiffusion around ``net``: ε-prediction on the linear schedule unless
    ``kwargs`` say otherwise (its own defaults are v-prediction on a sigmoid schedule)."""
    GaussianDiffusion = require("ddp").GaussianDiffusion
    opts = dict(objective="pred_noise", beta_schedule="linear") | kwargs
    return GaussianDiffusion(net, image_size=SETTINGS[setting]["size"], timesteps=T,
                             sampling_timesteps=sampling_steps, **opts)


def autocast(precision: str, device: str = "cpu"):
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def eps_loss_fn(toolkit: str, net: torch.nn.Module, setting: str) -> Callable:
    """loss(x0, t, noise) -> scalar ε-MSE through each toolkit's own forward-noising and loss code."""
    if toolkit == "ddpmkit":
        from ddpmkit import Denoiser
        from ddpmkit.losses import diffusion_losses
        from ddpmkit.schedules import linear
        den = Denoiser(net, linear(T))
        return lambda x0, t, noise: diffusion_losses(den, x0, t, noise)["loss"].mean()
    if toolkit == "diffusers":
        sched = require("diffusers").DDPMScheduler(num_train_timesteps=T, beta_schedule="linear")

        def loss(x0, t, noise):
            pred = net(sched.add_noise(x0, noise, t), t).sample
            return F.mse_loss(pred.float(), noise)
        return loss
    diffusion = ddp_diffusion(net, setting).to(next(net.parameters()).device)   # its schedule buffers too
    return lambda x0, t, noise: diffusion.p_losses(x0, t, noise)


def train_step_fn(toolkit: str, net: torch.nn.Module, setting: str, precision: str = "fp32",
                  lr: float = 1e-4, device: str = "cpu") -> Callable:
    """step(x0, t, noise) -> loss: forward, backward and an Adam update; the same work in every toolkit. The batch
    must already be on ``device`` (where ``net`` is moved); the loss is returned as a tensor, so timing a GPU step
    needs a synchronize, not a host copy per step."""
    net.to(device)
    loss_fn = eps_loss_fn(toolkit, net, setting)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()

    def step(x0, t, noise):
        with autocast(precision, device):
            loss = loss_fn(x0, t, noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()
    return step


def sample_fn(toolkit: str, net: torch.nn.Module, setting: str, precision: str = "fp32",
              device: str = "cpu") -> Callable:
    """run(n, steps, seed) -> images [n, C, H, W]: each toolkit's sampling loop with ``steps`` network evaluations
    (ancestral DDPM for ddpmkit and diffusers; DDIM, its respaced path, for denoising-diffusion-pytorch), on
    ``device``; the starting noise is drawn on the CPU."""
    s = SETTINGS[setting]
    shape = (s["channels"], s["size"], s["size"])
    net.to(device).eval()
    if toolkit == "ddpmkit":
        from ddpmkit import Denoiser
        from ddpmkit.samplers import sample
        from ddpmkit.schedules import linear
        den = Denoiser(net, linear(T))

        def run(n, steps, seed=0):
            g = torch.Generator().manual_seed(seed)
            with torch.inference_mode(), autocast(precision, device):
                return sample(den, torch.randn((n, *shape), generator=g).to(device), sampler="ddpm", steps=steps,
                              generator=g)
        return run
    if toolkit == "diffusers":
        DDPMScheduler = require("diffusers").DDPMScheduler

        def run(n, steps, seed=0):
            sched = DDPMScheduler(num_train_timesteps=T, beta_schedule="linear")
            sched.set_timesteps(steps)
            g = torch.Generator().manual_seed(seed)
            x = torch.randn((n, *shape), generator=g).to(device)
            with torch.inference_mode(), autocast(precision, device):
                for t in sched.timesteps:
                    x = sched.step(net(x, t).sample.float(), t, x, generator=g).prev_sample
            return x
        return run

    def run(n, steps, seed=0):
        torch.manual_seed(seed)   # GaussianDiffusion draws from the global RNG
        diffusion = ddp_diffusion(net, setting, sampling_steps=steps if steps < T else None).to(device)
        with autocast(precision, device):
            return diffusion.sample(batch_size=n).float() * 2 - 1
    return run


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out = {"cpu": cpu, "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "platform": platform.platform(), "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for dist in ("torch", "ddpmkit", "diffusers", "denoising-diffusion-pytorch"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    if out["ddpmkit"] is None:      # imported from a source tree (PYTHONPATH=src), as on a lent GPU machine
        import ddpmkit
        out["ddpmkit"] = f"{ddpmkit.__version__} (source tree)"
    return out


def matched_counts(settings=tuple(SETTINGS), toolkits=None) -> dict:
    """{setting: {toolkit: params}}; raises if a peer drifts outside ±2 % of ddpmkit's preset."""
    toolkits = available() if toolkits is None else toolkits
    out = {}
    for setting in settings:
        row = {tk: count(build(tk, setting)) for tk in toolkits}
        for tk, n in row.items():
            if abs(n / row["ddpmkit"] - 1) > TOLERANCE:
                raise AssertionError(f"{tk} at {setting}: {n:,} params vs ddpmkit {row['ddpmkit']:,} (>±2 %)")
        out[setting] = row
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    for setting, row in matched_counts().items():
        ref = row["ddpmkit"]
        print(setting + ": " + ", ".join(f"{NAMES[tk]} {n:,} ({(n / ref - 1) * 100:+.2f} %)" for tk, n in row.items()))
