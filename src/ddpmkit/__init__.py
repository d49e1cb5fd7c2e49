"""ddpmkit: denoising diffusion probabilistic models (Ho, Jain & Abbeel 2020) in PyTorch."""
__version__ = "0.1.0"

from . import diffusion, samplers, schedules  # noqa: E402
from .denoiser import Denoiser
from .nn import UNet, UNetConfig
from .pipeline import Pipeline, load

__all__ = ["schedules", "diffusion", "samplers", "Denoiser", "UNet", "UNetConfig", "Pipeline", "load", "__version__"]
