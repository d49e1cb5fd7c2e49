"""Run-folder files: safetensors for tensors, JSON for everything else, every write atomic (temp file + rename)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import UserError


def _file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's temp files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing: point to a run folder written by 'ddpmkit train'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}): restore it from a backup or retrain the run") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors file written atomically; tensors are made contiguous CPU copies."""
    path = Path(path)
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(flat, tmp, metadata=metadata)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} is missing: point to a run folder written by 'ddpmkit train'")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is corrupt or not a safetensors file ({e}): restore it or retrain the run") from None


def read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def flatten_state(obj: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested structure into {path: tensor} and a JSON-able skeleton with tensor placeholders."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(o: Any, p: str) -> Any:
        if torch.is_tensor(o):
            tensors[p] = o
            return {"__tensor__": p}
        if isinstance(o, dict):
            return {"__dict__": [[k, walk(v, f"{p}.{k}")] for k, v in o.items()]}
        if isinstance(o, (list, tuple)):
            return {"__list__": [walk(v, f"{p}.{i}") for i, v in enumerate(o)]}
        return o

    return tensors, walk(obj, prefix or "s")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            return [unflatten_state(v, tensors) for v in skeleton["__list__"]]
    return skeleton


def save_state(path: Path, state: dict) -> None:
    """A nested training state (optimizer, RNG, counters) as one safetensors file with a JSON skeleton."""
    tensors, skeleton = flatten_state(state)
    save_tensors(path, tensors, metadata={"skeleton": json.dumps(skeleton)})


def load_state(path: Path) -> dict:
    tensors = load_tensors(path)
    try:
        skeleton = json.loads(read_metadata(path)["skeleton"])
    except (KeyError, json.JSONDecodeError):
        raise UserError(f"{path} has no training-state skeleton: it was not written by 'ddpmkit train'") from None
    return unflatten_state(skeleton, tensors)
