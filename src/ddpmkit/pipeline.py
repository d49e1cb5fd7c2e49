"""Load a run folder and generate: ``ddpmkit.load(run_dir)(n=8, steps=1000, seed=0)``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from .checkpoint import read_json
from .config import RunConfig
from .denoiser import Denoiser
from .devices import resolve_device
from .errors import UserError
from .nn import UNet
from .guidance import guided, null_like
from .samplers import SAMPLERS, sample
from .train import _load_weights
from .viz import to_pil

DEFAULT_GUIDANCE = 3.0   # classifier-free guidance scale used by pipe(...) and `ddpmkit sample` for text models
# Default samplers, as the field has them: an unconditional DDPM samples with the paper's ancestral sampler over all
# T steps (Ho et al. Algorithm 2; diffusers' DDPMPipeline); a text-to-image model with a fast solver in 50 steps.
UNCONDITIONAL_DEFAULT = ("ddpm", None)
TEXT_DEFAULT = ("dpmpp-2m", 50)


class Pipeline:
    """A trained model with its schedule and parameterisation, ready to sample."""

    def __init__(self, model: UNet, config: RunConfig, run_dir: Path | None = None):
        self.model = model.eval()
        self.config = config
        self.schedule = config.diffusion.build_schedule()
        self.run_dir = run_dir
        self._encoder = None

    @classmethod
    def load(cls, run_dir: str | Path | None = None, weights: str = "ema",
             device: str | torch.device = "cpu") -> "Pipeline":
        """A run folder, or (no argument) the shipped text-to-image MNIST model. ``weights="ema"`` (default, what
        papers sample from) or ``"model"`` (the raw trained weights, where the run has them). ``device``: a torch
        device, or ``"auto"`` (the GPU if torch sees one, else the CPU; what the command line uses)."""
        run_dir = default_model_dir() if run_dir is None else Path(run_dir)
        if not run_dir.is_dir():
            raise UserError(f"run folder {run_dir} does not exist: pass a folder written by 'ddpmkit train'")
        if weights not in ("ema", "model"):
            raise UserError(f"weights must be ema or model, got {weights!r}")
        device = resolve_device(device)
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
    def is_text_model(self) -> bool:
        return bool(self.config.train.text_encoder)

    @property
    def encoder(self):
        """The frozen text encoder this model was trained with (loaded on first use)."""
        if self._encoder is None and self.is_text_model:
            from .text import TextEncoder
            self._encoder = TextEncoder.for_run(self.config.train, device=self.device)
        return self._encoder

    def encode(self, prompt: str | list[str] | None, n: int, negative: str | None = None, guidance: float = 1.0):
        """(denoiser, cond) for n images of ``prompt``: guided against the null prompt, or ``negative`` if given."""
        den = self.denoiser
        if not self.is_text_model:
            if prompt not in (None, "") or negative:
                raise UserError("this model is unconditional: it takes no prompt; train with --text-encoder for "
                                "text-to-image")
            return den, None
        if prompt is not None and not isinstance(prompt, (str, list, tuple)):
            raise UserError(f"a prompt must be text, got {type(prompt).__name__}: pass a string or a list of strings")
        prompts = [prompt or ""] * n if prompt is None or isinstance(prompt, str) else list(prompt)
        if len(prompts) != n:
            raise UserError(f"got {len(prompts)} prompts for n={n} images: pass one prompt or exactly n")
        cond = self.encoder(prompts).to(self.device)
        if guidance != 1.0:
            uncond = self.encoder([negative] * n).to(self.device) if negative else null_like(cond)
            den = guided(den, guidance, uncond)
        return den, cond

    def resolve_sampler(self, sampler: str | None, steps: int | None) -> tuple[str, int]:
        """The sampler and step count ``generate`` will use for these (possibly default) arguments."""
        default_sampler, default_steps = TEXT_DEFAULT if self.is_text_model else UNCONDITIONAL_DEFAULT
        if sampler is None:
            sampler, steps = default_sampler, default_steps if steps is None else steps
        return sampler, self.schedule.num_steps if steps is None else steps

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.config.model.in_channels, self.config.model.image_size, self.config.model.image_size)

    @torch.no_grad()
    def generate(self, prompt: str | list[str] | None = None, n: int = 8, steps: int | None = None,
                 seed: int | None = 0, guidance: float | None = None, negative: str | None = None,
                 sampler: str | None = None, eta: float = 0.0, clip_x0: bool | float = True,
                 callback: Callable[[dict], None] | None = None) -> torch.Tensor:
        """n images as float [-1, 1] NCHW. ``sampler``/``steps`` default to the ancestral sampler over all T for
        unconditional models and DPM-Solver++(2M) in 50 steps for text models; ``guidance`` to DEFAULT_GUIDANCE
        for text models (1.0 = plain conditional, 0.0 = unconditional); an empty prompt means unconditional.
        ``clip_x0``: True clamps x̂_0 to [-1, 1], False leaves it, a float p in (0, 1) is Imagen's dynamic
        thresholding at percentile p (e.g. 0.995)."""
        if n <= 0:
            raise UserError(f"n must be positive, got {n}")
        if not isinstance(clip_x0, bool) and not 0.0 < float(clip_x0) < 1.0:
            raise UserError(f"dynamic thresholding percentile must be in (0, 1), got {clip_x0} (Imagen uses 0.995)")
        sampler, steps = self.resolve_sampler(sampler, steps)
        if sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if eta and sampler != "ddim":
            raise UserError(f"eta applies to the ddim sampler only: drop it or pass sampler='ddim'")
        if not 1 <= steps <= self.schedule.num_steps:
            raise UserError(f"steps must be between 1 and {self.schedule.num_steps}, got {steps}")
        guidance = DEFAULT_GUIDANCE if guidance is None else float(guidance)
        den, cond = self.encode(prompt, n, negative, guidance)
        g = torch.Generator().manual_seed(seed) if seed is not None else torch.Generator().manual_seed(
            int(torch.randint(0, 2 ** 62, ())))
        x = torch.randn((n, *self.image_shape), generator=g).to(self.device)
        return sample(den, x, sampler=sampler, steps=steps, cond=cond, eta=eta, generator=g, callback=callback,
                      clip_x0=clip_x0)

    def __call__(self, prompt: str | list[str] | None = None, n: int = 8, steps: int | None = None,
                 seed: int | None = 0, **kwargs: Any) -> list[Image.Image]:
        return to_pil(self.generate(prompt, n=n, steps=steps, seed=seed, **kwargs))


def default_model_dir() -> Path:
    """The text-to-image MNIST model shipped inside the package (trained by the README's main command)."""
    from importlib import resources
    path = Path(str(resources.files("ddpmkit") / "weights" / "mnist-text"))
    if not (path / "config.json").exists():
        raise UserError("this installation has no shipped default model: pass a run folder written by 'ddpmkit train'")
    return path


def load(run_dir: str | Path | None = None, weights: str = "ema", device: str | torch.device = "cpu") -> Pipeline:
    """``ddpmkit.load()`` gives the shipped text-to-image model; ``ddpmkit.load(RUN)`` a run folder; ``device="cuda"``
    (or ``"auto"``) samples on a GPU. Seeds give the same starting noise on every device (drawn on the CPU)."""
    return Pipeline.load(run_dir, weights=weights, device=device)
