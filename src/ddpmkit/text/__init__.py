"""Frozen pretrained text encoders: prompts → ``TextCond(tokens [B,L,D], mask [B,L], pooled [B,P], is_null [B])``."""
from __future__ import annotations

from .backends import DEFAULT_ENCODER, EncoderLoadError, default_model_path
from .cond import TextCond, collate, masked_mean
from .encoder import PromptError, TextEncoder, check_prompts

__all__ = ["TextEncoder", "TextCond", "collate", "masked_mean", "check_prompts", "PromptError", "EncoderLoadError",
           "DEFAULT_ENCODER", "default_model_path"]
