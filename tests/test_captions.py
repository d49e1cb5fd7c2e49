"""MNIST captions from labels, and captions read for image folders (metadata.jsonl and .txt sidecars)."""
import re

import numpy as np
import pytest
from PIL import Image

from ddpmkit.data.captions import (DIGIT_WORDS, MNIST_HELD_OUT_TEMPLATES, MNIST_TEMPLATES, CaptionError,
                                   mnist_caption, mnist_captions, mnist_phrasings, read_captions)
from ddpmkit.errors import UserError


def digits_named(text):
    words = re.findall(r"[a-z]+|\d+", text.lower())
    return {int(w) if w.isdigit() else DIGIT_WORDS.index(w) for w in words if w.isdigit() or w in DIGIT_WORDS}


@pytest.mark.parametrize("held_out", [False, True])
def test_every_phrasing_names_its_digit_and_no_other(held_out):
    for d in range(10):
        phrasings = mnist_phrasings(d, held_out)
        assert len(phrasings) == len(MNIST_HELD_OUT_TEMPLATES if held_out else MNIST_TEMPLATES) >= 5
        for text in phrasings:
            assert digits_named(text) == {d}, text
    assert "a handwritten 7" in mnist_phrasings(7) and "the digit seven" in mnist_phrasings(7)
    assert "an eight written by hand" in mnist_phrasings(8)


def test_held_out_paraphrases_are_never_training_captions():
    assert not set(MNIST_TEMPLATES) & set(MNIST_HELD_OUT_TEMPLATES)
    for d in range(10):
        assert not set(mnist_phrasings(d)) & set(mnist_phrasings(d, held_out=True))
    labels = np.arange(1000) % 10
    train = set(mnist_captions(labels, seed=0))
    assert not train & {t for d in range(10) for t in mnist_phrasings(d, held_out=True)}


def test_mnist_captions_are_deterministic_and_use_several_phrasings():
    labels = [3] * 200
    a, b = mnist_captions(labels, seed=5), mnist_captions(labels, seed=5)
    assert a == b and a != mnist_captions(labels, seed=6)
    assert len(set(a)) == len(MNIST_TEMPLATES)
    assert mnist_caption(4, np.random.default_rng(1)) == mnist_caption(np.int64(4), np.random.default_rng(1))


@pytest.mark.parametrize("bad", [10, -1, "7", 2.5, None])
def test_bad_mnist_label_raises_one_line(bad):
    with pytest.raises(CaptionError) as info:
        mnist_caption(bad, np.random.default_rng(0))
    assert "\n" not in str(info.value) and isinstance(info.value, (UserError, ValueError))


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path)


def test_metadata_jsonl_and_sidecars_load(tmp_path):
    for name in ("a.png", "b.png", "sub/c.jpg", "sub/d.png", "e.png"):
        _image(tmp_path / name)
    (tmp_path / "metadata.jsonl").write_text(
        '{"file_name": "a.png", "text": "a red circle"}\n\n'
        '{"file_name": "sub/c.jpg", "text": " a blue square ", "extra": 1}\n', encoding="utf-8")
    (tmp_path / "a.txt").write_text("ignored: metadata wins", encoding="utf-8")
    (tmp_path / "b.txt").write_text("a green triangle\n", encoding="utf-8")
    (tmp_path / "sub" / "metadata.jsonl").write_text('{"file_name": "d.png", "caption": "a handwritten 7"}\n')
    assert read_captions(tmp_path) == {"a.png": "a red circle", "b.png": "a green triangle",
                                       "sub/c.jpg": "a blue square", "sub/d.png": "a handwritten 7"}


@pytest.mark.parametrize("content, line, words", [
    ('{"file_name": "a.png", "text": "ok"}\n{"file_name": "a.png" "text": "x"}\n', 2, "not valid JSON"),
    ('{"file_name": "a.png", "text": "ok"}\n\n["a.png", "x"]\n', 3, "JSON object"),
    ('{"text": "no name"}\n', 1, "file_name"),
    ('{"file_name": "a.png", "label": 3}\n', 1, "'text' field"),
    ('{"file_name": "a.png", "text": 3}\n', 1, "must be a string"),
    ('{"file_name": "missing.png", "text": "x"}\n', 1, "not found"),
    ('{"file_name": "../a.png", "text": "x"}\n', 1, "outside"),
    ('{"file_name": "a.png", "text": "x"}\n{"file_name": "./a.png", "text": "y"}\n', 2, "twice"),
])
def test_malformed_metadata_lines_name_their_line(tmp_path, content, line, words):
    _image(tmp_path / "a.png")
    (tmp_path / "metadata.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(CaptionError, match=words) as info:
        read_captions(tmp_path)
    msg = str(info.value)
    assert f"metadata.jsonl:{line}:" in msg and "\n" not in msg


def test_missing_folder_and_bad_sidecar_encoding(tmp_path):
    with pytest.raises(CaptionError, match="does not exist"):
        read_captions(tmp_path / "nope")
    _image(tmp_path / "a.png")
    (tmp_path / "a.txt").write_bytes(b"\xff\xfe caption")
    with pytest.raises(CaptionError, match="UTF-8"):
        read_captions(tmp_path)
