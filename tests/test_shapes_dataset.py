"""The procedural shapes dataset: deterministic by seed, varied, well-formed scenes and captions that parse back."""
import re

import numpy as np
import pytest
import torch

from ddpmkit.shapes import (COLORS, PARAPHRASE, POSITIONS, RELATIONS, SHAPES, TRAIN, ShapesDataset,
                            caption, parse_caption)
from ddpmkit.shapes.captions import HELD_OUT_ONLY_WORDS, HELD_OUT_SETS, WIDE, WIDE_EXTRA, WIDE_UNSEEN_SETS
from ddpmkit.shapes.scene import shape_mask


def test_same_seed_same_items_in_any_order_and_other_seeds_differ():
    a, b = ShapesDataset(seed=3), ShapesDataset(seed=3)
    late_first = b[41]
    for i in (0, 41, 10_000_000):
        (xa, ca, la), (xb, cb, lb) = a[i], b[i]
        assert torch.equal(xa, xb) and ca == cb and la == lb
    assert torch.equal(late_first[0], a[41][0])
    other = ShapesDataset(seed=4)
    differ = sum(not torch.equal(a[i][0], other[i][0]) for i in range(20))
    assert differ >= 18
    assert [a[i][1] for i in range(20)] != [other[i][1] for i in range(20)]


def test_reversed_share_of_pairs_and_the_default_draw():
    """``p_reversed``: the share of pairs named right / lower object first ("right of", "below"), on both axes; the
    default 0.5 keeps the scenes every seed has always drawn (golden: seed 0's first pairs)."""
    from ddpmkit.shapes.scene import REVERSED

    def relations(p, n=2000):
        return [ShapesDataset(seed=5, p_pair=1.0, p_reversed=p).label(i)[0]["relation"] for i in range(n)]

    assert not any(r in REVERSED for r in relations(0.0, 300))
    assert all(r in REVERSED for r in relations(1.0, 300))
    for p in (0.25, 0.5):
        rel = relations(p)
        assert abs(np.mean([r in REVERSED for r in rel]) - p) < 0.035      # 3.5 binomial sd at n = 2000
        assert set(rel) == set(RELATIONS)
    ds = ShapesDataset(seed=5, p_pair=1.0, p_reversed=0.25)
    for i in range(50):
        label, text = ds.label(i)
        assert parse_caption(text)["relation"] == label["relation"]
    assert [ShapesDataset(seed=0, p_pair=1.0).label(i)[0]["relation"] for i in range(8)] == [
        "above", "below", "right of", "below", "right of", "below", "above", "left of"]


def test_item_formats_and_lengths():
    x, caption, label = ShapesDataset(seed=0)[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert isinstance(caption, str) and caption and label["objects"]
    u, _, _ = ShapesDataset(seed=0, image_format="uint8")[0]
    assert u.shape == (32, 32, 3) and u.dtype == np.uint8
    assert torch.allclose(torch.from_numpy(u).permute(2, 0, 1).float() / 127.5 - 1, x)
    with pytest.raises(TypeError, match="unbounded"):
        len(ShapesDataset(seed=0))
    sized = ShapesDataset(seed=0, length=5)
    assert len(sized) == 5 and len(list(sized)) == 5
    with pytest.raises(IndexError):
        sized[5]
    images, captions, labels = sized.batch(0, 5)
    assert images.shape == (5, 3, 32, 32) and len(captions) == len(labels) == 5


def test_scenes_cover_the_vocabulary_and_pairs_never_touch():
    ds = ShapesDataset(seed=11)
    labels = [ds.label(i)[0] for i in range(400)]
    objects = [o for lab in labels for o in lab["objects"]]
    assert {o["color"] for o in objects} == set(COLORS) and len(COLORS) >= 6
    assert {o["shape"] for o in objects} == set(SHAPES)
    assert {o["size"] for o in objects} == {"small", "large"}
    assert {lab["objects"][0]["position"] for lab in labels if lab["relation"] is None} == set(POSITIONS)
    pairs = [lab for lab in labels if lab["relation"] is not None]
    assert {lab["relation"] for lab in pairs} == set(RELATIONS) and 120 < len(pairs) < 280
    for lab in pairs:
        a, b = lab["objects"]
        assert a["color"] != b["color"]
        ma, mb = (shape_mask(o["shape"], o["cx"], o["cy"], o["extent"]) for o in (a, b))
        assert ma.any() and mb.any() and not (ma & mb).any()


def test_captions_parse_back_to_the_scene_in_training_paraphrase_and_held_out_phrasings():
    for held_out in (False, True, 2, 3, 4):
        ds = ShapesDataset(seed=5, held_out=held_out)
        for i in range(300):
            label, _ = ds.label(i)
            for caption in ds.captions(i, 3):      # the item's own caption, then two paraphrases (or held-out ones)
                parsed = parse_caption(caption)
                assert parsed["relation"] == label["relation"], caption
                assert len(parsed["objects"]) == len(label["objects"])
                for said, truth in zip(parsed["objects"], label["objects"]):   # the order of the sentence is kept
                    assert {"color", "shape"} <= set(said) and all(truth[k] == v for k, v in said.items()), caption
            if label["relation"] is None:
                assert "position" in parsed["objects"][0], caption


# every held-out set against the training wordings and against each earlier set: a later set checks a recipe that
# the earlier ones helped to choose
EARLIER = [(n, name, words) for n in HELD_OUT_SETS
           for name, words in [("train", TRAIN), ("paraphrase", PARAPHRASE)]
           + [(f"held-out-{k}", HELD_OUT_SETS[k]) for k in HELD_OUT_SETS if k < n]]


@pytest.mark.parametrize("held_out, words", [(n, w) for n, _, w in EARLIER],
                         ids=[f"{n}-{name}" for n, name, _ in EARLIER])
def test_held_out_phrasings_never_appear_in_training_captions(held_out, words):
    held_words = HELD_OUT_SETS[held_out]
    for table in ("single", "pair"):
        assert not set(held_words[table]) & set(words[table])
    for table in ("where", "rel", "size"):
        assert set(held_words[table]) == set(words[table])                # every value has words in both
        for key, phrases in held_words[table].items():
            assert not set(phrases) & set(words[table][key])
    train = {ShapesDataset(seed=2).label(i)[1] for i in range(1500)}
    held = {ShapesDataset(seed=2, held_out=held_out).label(i)[1] for i in range(1500)}
    assert len(train) > 500 and len(held) > 500 and not train & held


def test_every_held_out_set_lists_its_unseen_words():
    assert set(HELD_OUT_ONLY_WORDS) == set(HELD_OUT_SETS)   # a new set cannot skip the check below


@pytest.mark.parametrize("held_out, only", list(HELD_OUT_ONLY_WORDS.items()),
                         ids=[f"set-{n}" for n in HELD_OUT_ONLY_WORDS])
def test_no_held_out_word_occurs_in_any_training_caption(held_out, only):
    ds = ShapesDataset(seed=3)
    train = [c for i in range(1000) for c in ds.captions(i, 3)]
    for earlier in range(1, held_out):   # nor in an earlier held-out set's captions
        train += [c for i in range(1000) for c in ShapesDataset(seed=3, held_out=earlier).captions(i, 3)]
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, only)) + r")\b")
    assert not [c for c in train if pattern.search(c)]
    held = [ShapesDataset(seed=3, held_out=held_out).label(i)[1] for i in range(300)]
    assert sum(bool(pattern.search(c)) for c in held) == len(held)   # every paraphrase has a word training never saw


def test_extra_captions_describe_the_same_scene_in_other_words():
    ds = ShapesDataset(seed=4)
    for i in range(200):
        label, first = ds.label(i)
        caps = ds.captions(i, 3)
        assert caps[0] == first and caps == ds.captions(i, 3)            # the item's caption first; deterministic
        for text in caps:
            said = parse_caption(text)
            assert said["relation"] == label["relation"]
            assert [(o["color"], o["shape"]) for o in said["objects"]] == [(o["color"], o["shape"])
                                                                           for o in label["objects"]]
    assert sum(len(set(ds.captions(i, 3))) > 1 for i in range(200)) > 150  # most scenes get other wordings
    # the extras are PARAPHRASE wordings: 13 of its 14 templates have a word no TRAIN template has
    markers = {"drawing", "scene", "sits", "drawn", "located", "background"}
    train_words = {w for t in TRAIN["single"] + TRAIN["pair"] for w in t.split()}
    assert not markers & train_words and "the" not in train_words
    extras = [c.split() for i in range(200) for c in ds.captions(i, 3)[1:]]
    assert sum(w[0] == "the" or bool(markers & set(w)) for w in extras) > 0.8 * len(extras)


@pytest.mark.parametrize("words", [TRAIN, PARAPHRASE, WIDE, *HELD_OUT_SETS.values()],
                         ids=["train", "paraphrase", "wide", *[f"held-out-{n}" for n in HELD_OUT_SETS]])
def test_every_relation_wording_parses_to_its_relation_in_every_pair_template(words):
    # every wording, not a random draw of them: a wording the parser cannot read would mislabel its scenes
    for relation, phrases in words["rel"].items():
        for phrase in phrases:
            for template in words["pair"]:
                text = template.format(a="red circle", rel=phrase, b="blue square")
                said = parse_caption(text)
                assert said["relation"] == relation, text
                assert [o["color"] for o in said["objects"]] == ["red", "blue"], text
    assert all(len(PARAPHRASE["rel"][r]) == 6 for r in ("above", "below"))   # the README recipe's six wordings


def _phrases(words: dict) -> set[tuple]:
    """Every (table, value, phrase) of a phrasing table; templates as (table, phrase)."""
    out = {(t, p) for t in ("single", "pair") for p in words[t]}
    return out | {(t, k, p) for t in ("where", "rel", "size") for k, ps in words[t].items() for p in ps}


def test_the_wide_vocabulary_is_paraphrase_plus_the_spent_sets_and_never_an_unseen_one():
    spent = [words for n, words in HELD_OUT_SETS.items() if n not in WIDE_UNSEEN_SETS]
    assert len(spent) == 7 and WIDE_UNSEEN_SETS == (8, 9)
    expected = set().union(*map(_phrases, [PARAPHRASE, *spent])) | {(t, k, p) for t, table in WIDE_EXTRA.items()
                                                                   for k, ps in table.items() for p in ps}
    assert _phrases(WIDE) == expected
    assert all(len(WIDE["rel"][r]) == 25 for r in ("above", "below")) and len(WIDE["size"]["small"]) == 12
    for n in WIDE_UNSEEN_SETS:       # no unseen set's wording, nor any of its words, in a wide training caption
        assert not _phrases(WIDE) & _phrases(HELD_OUT_SETS[n])
        ds = ShapesDataset(seed=3, vocabulary="wide")
        train = [c for i in range(1500) for c in ds.captions(i, 3)]
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, HELD_OUT_ONLY_WORDS[n])) + r")\b")
        assert not [c for c in train if pattern.search(c)]


def test_the_vocabulary_changes_only_the_extra_captions():
    base, wide = ShapesDataset(seed=5), ShapesDataset(seed=5, vocabulary="wide")
    assert ShapesDataset(seed=5, vocabulary="base").captions(7, 3) == base.captions(7, 3)   # the default
    extra_base, extra_wide = [], []
    for i in range(300):
        b, w = base.captions(i, 3), wide.captions(i, 3)
        assert b[0] == w[0] and base.label(i) == wide.label(i)       # scene, label and template caption unchanged
        assert (base[i][0] == wide[i][0]).all()
        extra_base += b[1:]
        extra_wide += w[1:]
    assert len(set(extra_wide) - set(extra_base)) > 0.5 * len(extra_wide)   # the extras are drawn from WIDE
    with pytest.raises(ValueError, match="unknown shapes vocabulary 'huge': choose base or wide"):
        ShapesDataset(vocabulary="huge")
    label, _ = base.label(0)
    with pytest.raises(ValueError, match="unknown shapes vocabulary"):
        caption(label, np.random.default_rng(0), paraphrase="huge")


def test_a_caption_is_held_out_or_a_paraphrase_not_both():
    label, _ = ShapesDataset(seed=0).label(0)
    for held_out in (True, *sorted(HELD_OUT_SETS)[1:]):
        with pytest.raises(ValueError, match="not both"):
            caption(label, np.random.default_rng(0), held_out=held_out, paraphrase=True)
    with pytest.raises(ValueError, match="held_out must be False, True .* or one of 2, 3, 4, 5, 6"):
        caption(label, np.random.default_rng(0), held_out=max(HELD_OUT_SETS) + 1)


@pytest.mark.parametrize("bad", ["a red thing", "a circle on the left", "a red circle on the left at the top", 5])
def test_unparseable_captions_raise_one_clear_line(bad):
    with pytest.raises(ValueError) as info:
        parse_caption(bad)
    assert "\n" not in str(info.value)
