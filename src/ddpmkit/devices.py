"""Which torch device to sample and evaluate on: ``--device auto|cpu|cuda|cuda:N|mps``."""
from __future__ import annotations

import torch

from .errors import UserError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto``: the first CUDA GPU if torch sees one, else the CPU. Anything else must be a torch device string
    that this machine has; otherwise one line that names the problem and the fix."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {name!r} is not a torch device: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: torch sees no CUDA GPU here (a CPU-only torch build, or no driver); "
                            "use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UserError(f"--device {name}: torch sees no Apple GPU (MPS) here; use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {name}: ddpmkit samples on cpu, cuda or mps, not {device.type}")
    return device
