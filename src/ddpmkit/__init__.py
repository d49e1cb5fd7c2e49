"""ddpmkit: denoising diffusion probabilistic models (Ho, Jain & Abbeel 2020) in PyTorch."""
from . import diffusion, samplers, schedules
from .denoiser import Denoiser
from .nn import UNet, UNetConfig

__version__ = "0.1.0"
__all__ = ["schedules", "diffusion", "samplers", "Denoiser", "UNet", "UNetConfig", "__version__"]
