"""Captions: MNIST captions made from labels, and captions read for a folder of images.

MNIST: ``MNIST_TEMPLATES`` are the phrasings used for training; ``MNIST_HELD_OUT_TEMPLATES`` are paraphrases that no
training caption uses, kept for measuring whether a model generalises to wording it never saw.

Folders: Hugging Face imagefolder's ``metadata.jsonl`` (one JSON object per line with ``file_name`` and ``text``;
any folder of the tree may hold one, its ``file_name`` values being relative to it) or a sidecar ``.txt`` beside
an image with the same stem. Where both describe an image, ``metadata.jsonl`` wins.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from .images import IMAGE_SUFFIXES

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Placeholders: {digit} "7", {word} "seven", {a_digit} "a 7" / "an 8", {a_word} "a seven" / "an eight".
MNIST_TEMPLATES = (
    "a handwritten {digit}",
    "the digit {word}",
    "a picture of the number {digit}",
    "the number {word}",
    "handwritten digit {digit}",
    "{a_word} written by hand",
    "an image of the digit {digit}",
    "digit {word}",
    "{word}",
    "{digit}",
)
MNIST_HELD_OUT_TEMPLATES = (   # never used for training
    "a scribbled {word}",
    "someone wrote the number {word} by hand",
    "the numeral {digit}",
    "a sketch of the figure {digit}",
    "{a_word}, drawn with a pen",
    "an ink drawing of {a_digit}",
    "the handwritten number {word}",
)


class CaptionError(UserError, ValueError):
    """Bad caption input (label, metadata line, sidecar); the message is one line naming the fix."""


def _article(text: str) -> str:
    return ("an " if text in ("8", "eight", "11", "18") else "a ") + text


def _digit(label) -> int:
    try:
        d = int(label)
    except (TypeError, ValueError):
        raise CaptionError(f"an MNIST label must be an int 0-9, not {label!r}") from None
    if not 0 <= d <= 9 or d != label:
        raise CaptionError(f"an MNIST label must be an int 0-9, not {label!r}")
    return d


def mnist_phrasings(label, held_out: bool = False) -> list[str]:
    """Every caption of one digit in the training phrasings (or the held-out ones)."""
    d = _digit(label)
    word, digit = DIGIT_WORDS[d], str(d)
    fill = {"digit": digit, "word": word, "a_digit": _article(digit), "a_word": _article(word)}
    return [t.format(**fill) for t in (MNIST_HELD_OUT_TEMPLATES if held_out else MNIST_TEMPLATES)]


def mnist_caption(label, rng: np.random.Generator, held_out: bool = False) -> str:
    """One caption for a digit, its phrasing drawn from ``rng``."""
    options = mnist_phrasings(label, held_out)
    return options[int(rng.integers(len(options)))]


def mnist_captions(labels, seed: int = 0, held_out: bool = False) -> list[str]:
    """Captions for a sequence of labels, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [mnist_caption(label, rng, held_out) for label in labels]


def read_captions(folder: str | Path, caption_column: str | None = None) -> dict[str, str]:
    """``{image path relative to folder (posix): caption}`` from ``metadata.jsonl`` files and ``.txt`` sidecars.

    ``caption_column``: the metadata field holding the caption (default: ``text``, else ``caption``).
    Images with no caption are absent from the result.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CaptionError(f"caption folder {str(root)!r} does not exist or is not a folder: give a folder of images")
    root = root.resolve()
    captions: dict[str, str] = {}
    for meta in sorted(root.rglob("metadata.jsonl")):
        captions.update(_read_metadata(meta, root, caption_column, captions))
    for image in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        key = image.relative_to(root).as_posix()
        sidecar = image.with_suffix(".txt")
        if key in captions or not sidecar.is_file():
            continue
        try:
            captions[key] = sidecar.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            raise CaptionError(f"{sidecar}: not UTF-8 text; save the caption file as UTF-8") from None
    return dict(sorted(captions.items()))


def _read_metadata(meta: Path, root: Path, column: str | None, seen: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    example = '{"file_name": "0001.png", "text": "a red circle"}'
    try:
        lines = meta.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise CaptionError(f"{meta}: not UTF-8 text; save metadata.jsonl as UTF-8") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{meta}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CaptionError(f"{where}: not valid JSON ({exc.msg}); each line must be one object like {example}") from None
        if not isinstance(row, dict):
            raise CaptionError(f"{where}: expected a JSON object like {example}, got {type(row).__name__}")
        name = row.get("file_name")
        if not isinstance(name, str) or not name:
            raise CaptionError(f"{where}: no \"file_name\" string; each line needs one, like {example}")
        field = column or next((k for k in ("text", "caption") if k in row), None)
        if field is None or field not in row:
            raise CaptionError(f"{where}: no {field or 'text'!r} field (fields: {', '.join(sorted(row))}); "
                               f"add one, or pass caption_column=")
        text = row[field]
        if not isinstance(text, str):
            raise CaptionError(f"{where}: {field!r} must be a string, not {type(text).__name__}")
        path = (meta.parent / name).resolve()
        if not path.is_relative_to(root):
            raise CaptionError(f"{where}: file_name {name!r} points outside {root}; give a path inside the folder")
        if not path.is_file():
            raise CaptionError(f"{where}: file_name {name!r} not found in {meta.parent}; fix the name or add the image")
        key = path.relative_to(root).as_posix()
        if key in out or key in seen:
            raise CaptionError(f"{where}: {key!r} is captioned twice; keep one line per image")
        out[key] = text.strip()
    return out
