"""Procedural shape scenes with captions, and the detector that scores images against prompts."""
from __future__ import annotations

from .captions import HELD_OUT, PARAPHRASE, TRAIN, caption, parse_caption
from .dataset import ShapesDataset
from .detect import detect, score
from .scene import COLORS, PALETTE, POSITIONS, RELATIONS, SHAPES, SIZES, render, sample_scene

__all__ = ["ShapesDataset", "sample_scene", "render", "caption", "parse_caption", "detect", "score",
           "TRAIN", "PARAPHRASE", "HELD_OUT", "COLORS", "PALETTE", "SHAPES", "SIZES", "POSITIONS", "RELATIONS"]
