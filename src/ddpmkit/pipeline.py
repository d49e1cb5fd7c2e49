"""Load a run folder and generate: ``ddpmkit.load(run_dir)(n=8, steps=1000, seed=0)``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from .checkpoint import read_json
from .config import RunConfig
from .denoiser import Denoiser
from .errors import UserError
from .nn import UNet
from .samplers import sample_ddpm
from .train import _load_weights
from .viz import to_pil


class Pipeline:
    """A trained model with its schedule and parameterisation, ready to sample."""

    def __init__(self, model: UNet, config: RunConfig, run_dir: Path | None = None):
        self.model = model.eval()
        self.config = config
        self.schedule = config.diffusion.build_schedule()
        self.run_dir = run_dir

    @classmethod
    def load(cls, run_dir: str | Path, weights: str = "ema", device: str | torch.device = "cpu") -> "Pipeline":
        """``weights="ema"`` (default, what papers sample from) or ``"model"`` (the raw trained weights)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise UserError(f"run folder {run_dir} does not exist: pass a folder written by 'ddpmkit train'")
        if weights not in ("ema", "model"):
            raise UserError(f"weights must be ema or model, got {weights!r}")
        config = RunConfig.from_dict(read_json(run_dir / "config.json"))
        model = UNet(config.model)
        path = run_dir / f"{weights}.safetensors"
        if weights == "ema" and not path.exists():
            path = run_dir / "model.safetensors"
        _load_weights(model, path)
        return cls(model.to(device), config, run_dir)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def denoiser(self) -> Denoiser:
        return Denoiser(self.model, self.schedule, self.config.diffusion.prediction, self.config.diffusion.variance)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.config.model.in_channels, self.config.model.image_size, self.config.model.image_size)

    @torch.no_grad()
    def generate(self, n: int = 8, steps: int | None = None, seed: int | None = 0, clip_x0: bool = True,
                 callback: Callable[[dict], None] | None = None, cond: Any = None) -> torch.Tensor:
        """n images as float [-1, 1] NCHW, from the ancestral sampler over ``steps`` (default all T) respaced steps."""
        if n <= 0:
            raise UserError(f"n must be positive, got {n}")
        steps = self.schedule.num_steps if steps is None else steps
        if not 1 <= steps <= self.schedule.num_steps:
            raise UserError(f"steps must be between 1 and {self.schedule.num_steps}, got {steps}")
        g = torch.Generator().manual_seed(seed) if seed is not None else torch.Generator().manual_seed(
            int(torch.randint(0, 2 ** 62, ())))
        x = torch.randn((n, *self.image_shape), generator=g).to(self.device)
        return sample_ddpm(self.denoiser, x, steps, cond=cond, clip_x0=clip_x0, generator=g, callback=callback)

    def __call__(self, n: int = 8, steps: int | None = None, seed: int | None = 0, **kwargs: Any) -> list[Image.Image]:
        return to_pil(self.generate(n=n, steps=steps, seed=seed, **kwargs))


def load(run_dir: str | Path, weights: str = "ema", device: str | torch.device = "cpu") -> Pipeline:
    return Pipeline.load(run_dir, weights=weights, device=device)
