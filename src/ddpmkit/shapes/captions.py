"""Captions for shape scenes, in training phrasings and in held-out paraphrases, and a parser back to labels.

The held-out phrasings (``held_out=True``) are never produced for training; they measure whether a model read the
meaning of a prompt or memorised its wording. ``parse_caption`` reads both, and returns only what a caption says:
``{"objects": [{"color", "shape", optional "size", optional "position"}], "relation": str | None}``; a caption it
cannot read raises ``CaptionError`` (a ValueError) in one line.
"""
from __future__ import annotations

import re

import numpy as np

from ..data.captions import CaptionError
from .scene import COLORS, POSITIONS, SHAPES

# --- phrasings: each maps a label value to the words used for it --------------------------------------------------
# TRAIN: the few templates each scene's own caption uses. PARAPHRASE: more training wordings of the same scene (other
# templates and synonyms for every place, relation and size) used for a scene's extra captions
# (``ShapesDataset.captions(i, k)``, ``--shapes-captions N``). On MiniLM's output layer, training on them cost
# 40-45 points of relation in every schedule tried; read from its layer 3 (``--text-encoder-layer 3``) they keep
# relation at 100%. The README's shapes recipe (3 captions per scene, 60% pairs, layers 3 and 6, separate
# cross-attention, forward-pairs curriculum) with three wordings per vertical direction here missed the held-out
# relation by 5.1, 0, 5.1, -0.6 and 9.5 points over seeds 0-4: the U-Net learned "below" and its two synonyms by
# identity, and "under"/"beneath" fell back to "first-named goes up". Six wordings per vertical direction (the last
# three of each below) give 2.5, 0, 0 and 0.6 on seeds 0, 1, 2 and 4 (benchmarks/results/shapes_caption_ablation.jsonl,
# shapes_text.json); seed 3 fell into the relation coin flip (48.7%). On HELD_OUT_2, written after, relation is
# 16.5-31.6% on all five ("to the west/east of" drawn on the vertical axis): the six wordings taught set 1's words,
# not relation words in general (benchmarks/results/shapes_held_out.jsonl). A wider vocabulary with relation verbs
# (branch exp-v2; ablation lines 48-51) lifted HELD_OUT_5's relation on two of three good seeds but left gaps of
# 13-24 points, so it did not replace this one. On HELD_OUT_6 (session 17) the good seeds' relation gaps are 0-1.9:
# its vertical words sit near read ones ("above", the word piece "under"); unseen size words are not read at all.
TRAIN = {
    "single": ("a {obj} {where}", "{obj} {where}", "there is a {obj} {where}"),
    "pair": ("a {a} {rel} a {b}", "{a} {rel} {b}"),
    "where": {"left": ("on the left",), "right": ("on the right",), "top": ("at the top",),
              "bottom": ("at the bottom",), "centre": ("in the centre", "in the middle")},
    "rel": {"left of": ("left of", "to the left of"), "right of": ("right of", "to the right of"),
            "above": ("above",), "below": ("below",)},
    "size": {"small": ("small",), "large": ("large",)},
}
PARAPHRASE = {
    "single": ("the {obj} is {where}", "a {obj} sits {where}", "a drawing of a {obj} {where}",
               "a scene with a {obj} {where}", "a {obj} drawn {where}", "a {obj} located {where}",
               "a {obj} {where} on a black background"),
    "pair": ("there is a {a} {rel} a {b}", "the {a} is {rel} the {b}", "a drawing of a {a} {rel} a {b}",
             "a scene with a {a} {rel} a {b}", "a {a} sits {rel} a {b}", "a {a} drawn {rel} a {b}",
             "a {a} located {rel} a {b}"),
    "where": {"left": ("on the left", "at the left", "to the left", "in the left part"),
              "right": ("on the right", "at the right", "to the right", "in the right part"),
              "top": ("at the top", "in the upper part", "up top", "at the top edge"),
              "bottom": ("at the bottom", "in the lower part", "down at the bottom", "at the bottom edge"),
              "centre": ("in the centre", "in the middle", "at the centre", "centred")},
    "rel": {"left of": ("left of", "to the left of", "further left than"),
            "right of": ("right of", "to the right of", "further right than"),
            "above": ("above", "higher than", "up above", "north of", "further up than", "higher up than"),
            "below": ("below", "lower than", "down below", "south of", "further down than", "lower down than")},
    "size": {"small": ("small", "tiny"), "large": ("large", "huge")},
}
HELD_OUT = {
    "single": ("a picture of a {obj} {where}", "one {obj}, {where}", "an image showing a {obj} {where}"),
    "pair": ("a picture of a {a} {rel} a {b}", "a {a} placed {rel} a {b}"),
    "where": {"left": ("on the left side",), "right": ("on the right side",), "top": ("near the top",),
              "bottom": ("near the bottom",), "centre": ("in the center",)},
    "rel": {"left of": ("on the left of",), "right of": ("on the right of",),
            "above": ("on top of", "over"), "below": ("under", "beneath")},
    "size": {"small": ("little",), "large": ("big",)},
}
# the words and phrases only HELD_OUT uses (tests check that no training caption contains one)
HELD_OUT_ONLY = ("picture", "one", "image", "showing", "placed", "side", "near", "center", "on the left of",
                 "on the right of", "on top of", "over", "under", "beneath", "little", "big")
# A second held-out set, written in session 15 after the six-wording recipe was fixed and before any model was scored
# on it: HELD_OUT steered the recipe once (its misses led to the six wordings), so this one is the clean check. Colour
# and shape words stay (they are the content), as in HELD_OUT; every other wording is new to training and to HELD_OUT.
HELD_OUT_2 = {
    "single": ("a sketch of a {obj} {where}", "a {obj} positioned {where}", "a rendering of a {obj} {where}"),
    "pair": ("a sketch of a {a} {rel} a {b}", "here a {a} is {rel} a {b}", "a rendering of a {a} {rel} a {b}"),
    "where": {"left": ("toward the left",), "right": ("toward the right",), "top": ("along the top",),
              "bottom": ("along the bottom",), "centre": ("in the central area",)},
    "rel": {"left of": ("to the west of",), "right of": ("to the east of",),
            "above": ("atop", "sitting on"), "below": ("underneath", "supporting")},
    "size": {"small": ("miniature",), "large": ("giant",)},
}
HELD_OUT_2_ONLY = ("sketch", "positioned", "rendering", "here", "toward", "along", "central", "area", "west", "east",
                   "atop", "sitting", "underneath", "supporting", "miniature", "giant")
# A third, written in session 15 after set 2's misses ("to the west of" drawn as below, "to the east of" as above) and
# before any model was scored on it, to check a recipe that set 2 steers (benchmarks/results/shapes_held_out.jsonl).
HELD_OUT_3 = {
    "single": ("a diagram with a {obj} {where}", "look: a {obj} {where}", "an illustration of a {obj} {where}"),
    "pair": ("a diagram with a {a} {rel} a {b}", "look: a {a} {rel} a {b}", "an illustration of a {a} {rel} a {b}"),
    "where": {"left": ("at the far left",), "right": ("at the far right",), "top": ("at the very top",),
              "bottom": ("at the very bottom",), "centre": ("in the exact centre",)},
    "rel": {"left of": ("on the left hand side of",), "right of": ("on the right hand side of",),
            "above": ("upon", "stacked on"), "below": ("at the foot of", "propping up")},
    "size": {"small": ("mini",), "large": ("massive",)},
}
HELD_OUT_3_ONLY = ("diagram", "look", "illustration", "far", "very", "exact", "hand", "upon", "stacked", "foot",
                   "propping", "mini", "massive")
# A fourth, written in session 15 after set 3's misses (relation verbs: "propping up" drawn as above) and before any
# model was scored on it, to check training on relation verbs (ablation line 47): verbs near trained ones and farther.
HELD_OUT_4 = {
    "single": ("a graphic of a {obj} {where}", "a {obj} appears {where}", "we see a {obj} {where}"),
    "pair": ("a graphic of a {a} {rel} a {b}", "we see a {a} {rel} a {b}", "a {a} that is {rel} a {b}"),
    "where": {"left": ("by the left border",), "right": ("by the right border",), "top": ("by the top border",),
              "bottom": ("by the bottom border",), "centre": ("in the dead centre",)},
    "rel": {"left of": ("off to the left of",), "right of": ("off to the right of",),
            "above": ("balanced on", "riding on"), "below": ("holding up", "carrying")},
    "size": {"small": ("teeny",), "large": ("jumbo",)},
}
HELD_OUT_4_ONLY = ("graphic", "appears", "we", "see", "that", "border", "dead", "off", "balanced", "riding", "holding",
                   "carrying", "teeny", "jumbo")
# A fifth, written in session 16 together with a candidate vocabulary that sets 2-4's misses steer (relation verbs,
# compass words on both axes, more size words; branch exp-v2) and committed before any model was scored on it.
HELD_OUT_5 = {
    "single": ("a photo of a {obj} {where}", "a {obj} is shown {where}", "you can see a {obj} {where}"),
    "pair": ("a photo of a {a} {rel} a {b}", "you can see a {a} {rel} a {b}", "in this photo a {a} is {rel} a {b}"),
    "where": {"left": ("hugging the left edge",), "right": ("hugging the right edge",),
              "top": ("hugging the top edge",), "bottom": ("hugging the bottom edge",),
              "centre": ("smack in the middle",)},
    "rel": {"left of": ("at the left of", "farther left than"), "right of": ("at the right of", "farther right than"),
            "above": ("mounted on", "floating above"), "below": ("shouldering", "at the base of")},
    "size": {"small": ("petite",), "large": ("oversized",)},
}
HELD_OUT_5_ONLY = ("photo", "shown", "you", "can", "hugging", "smack", "at the left of", "at the right of", "farther",
                   "mounted", "floating", "shouldering", "base", "petite", "oversized")
# A sixth, written in session 17 before that session's runs (vocabulary v2 with the embeddings and conditioning noise)
# were scored: set 5 became the development set those runs are chosen on, so this one is the test.
HELD_OUT_6 = {
    "single": ("an artwork of a {obj} {where}", "notice the {obj} {where}", "a frame with a {obj} {where}"),
    "pair": ("an artwork of a {a} {rel} a {b}", "notice the {a} {rel} the {b}", "observe a {a} {rel} a {b}"),
    "where": {"left": ("in the left half",), "right": ("in the right half",), "top": ("in the top half",),
              "bottom": ("in the bottom half",), "centre": ("at the midpoint",)},
    "rel": {"left of": ("just left of",), "right of": ("just right of",),
            "above": ("hovering above", "topping"), "below": ("underpinning", "at the underside of")},
    "size": {"small": ("wee",), "large": ("colossal",)},
}
HELD_OUT_6_ONLY = ("artwork", "notice", "frame", "observe", "half", "midpoint", "just", "hovering", "topping",
                   "underpinning", "underside", "wee", "colossal")
# A seventh, written in session 18 before any change of that session was tried: sets 1-6 all steered a choice, so this
# is the test of whatever session 18 adds. As sets 2-5 and unlike set 6, its relation verbs carry the direction only in
# what they mean for two objects ("cradling", "crowning"), and it has two size words per size.
HELD_OUT_7 = {
    "single": ("a snapshot of a {obj} {where}", "i drew a {obj} {where}", "this shows a {obj} {where}"),
    "pair": ("a snapshot of a {a} {rel} a {b}", "i drew a {a} {rel} a {b}", "this shows a {a} {rel} a {b}"),
    "where": {"left": ("at the left margin",), "right": ("at the right margin",), "top": ("at the top margin",),
              "bottom": ("at the bottom margin",), "centre": ("at the heart of the canvas",)},
    "rel": {"left of": ("on the left flank of",), "right of": ("on the right flank of",),
            "above": ("crowning", "capping"), "below": ("cradling", "buttressing")},
    "size": {"small": ("microscopic", "slight"), "large": ("hefty", "mammoth")},
}
HELD_OUT_7_ONLY = ("snapshot", "i", "drew", "shows", "margin", "heart", "canvas", "flank", "crowning",
                   "capping", "cradling", "buttressing", "microscopic", "slight", "hefty", "mammoth")
# An eighth, written in session 19 before any change of that session: sets 1-7 all steered or scored a choice, so this
# is the test of whatever session 19 adds. Like set 7: relation verbs that say the direction only through what they
# mean for two objects ("elevating", "lounging on"), an unusual centre phrase, two size words per size.
HELD_OUT_8 = {
    "single": ("a painting of a {obj} {where}", "someone painted a {obj} {where}", "a {obj} waits {where}"),
    "pair": ("a painting of a {a} {rel} a {b}", "someone painted a {a} {rel} a {b}",
             "in the painting a {a} is {rel} a {b}"),
    "where": {"left": ("in the leftmost region",), "right": ("in the rightmost region",),
              "top": ("in the topmost region",), "bottom": ("in the bottommost region",),
              "centre": ("at the core of the composition",)},
    "rel": {"left of": ("leftwards from", "nearer the left edge than"),
            "right of": ("rightwards from", "nearer the right edge than"),
            "above": ("surmounting", "lounging on"), "below": ("shoring up", "elevating")},
    "size": {"small": ("puny", "compact"), "large": ("immense", "whopping")},
}
HELD_OUT_8_ONLY = ("painting", "someone", "painted", "waits", "leftmost", "rightmost", "topmost", "bottommost",
                   "region", "core", "composition", "leftwards", "rightwards", "nearer", "surmounting", "lounging",
                   "shoring", "elevating", "puny", "compact", "immense", "whopping")
# A ninth, written in session 20 before any change of that session: sets 1-8 all steered or scored a choice, so this is
# the test of whatever session 20 adds. Its horizontal relations are said by reading order ("preceding", "following"),
# its vertical verbs only by what they mean for two objects, its centre phrase by no centre word at all.
HELD_OUT_9 = {
    "single": ("a poster of a {obj} {where}", "spotted: a {obj} {where}", "a lone {obj} {where}"),
    "pair": ("a poster of a {a} {rel} a {b}", "spotted: a {a} {rel} a {b}", "on the poster a {a} is {rel} a {b}"),
    "where": {"left": ("within the left third",), "right": ("within the right third",),
              "top": ("within the top third",), "bottom": ("within the bottom third",),
              "centre": ("halfway between the edges",)},
    "rel": {"left of": ("preceding", "a bit left of"), "right of": ("following", "a bit right of"),
            "above": ("straddling", "squatting on"), "below": ("upholding", "cushioning")},
    "size": {"small": ("dinky", "undersized"), "large": ("sizable", "humongous")},
}
HELD_OUT_9_ONLY = ("poster", "spotted", "lone", "within", "third", "halfway", "edges", "preceding", "following", "bit",
                   "straddling", "squatting", "upholding", "cushioning", "dinky", "undersized", "sizable",
                   "humongous")
HELD_OUT_SETS = {1: HELD_OUT, 2: HELD_OUT_2, 3: HELD_OUT_3, 4: HELD_OUT_4, 5: HELD_OUT_5,   # held_out=True is set 1
                 6: HELD_OUT_6, 7: HELD_OUT_7, 8: HELD_OUT_8, 9: HELD_OUT_9}
HELD_OUT_ONLY_WORDS = {1: HELD_OUT_ONLY, 2: HELD_OUT_2_ONLY, 3: HELD_OUT_3_ONLY, 4: HELD_OUT_4_ONLY, 5: HELD_OUT_5_ONLY,
                       6: HELD_OUT_6_ONLY, 7: HELD_OUT_7_ONLY, 8: HELD_OUT_8_ONLY,
                       9: HELD_OUT_9_ONLY}

# WIDE: a training vocabulary for ``--shapes-vocabulary wide`` (session 19): PARAPHRASE, the extra wordings of branch
# exp-v2 (six per horizontal relation, relation verbs, four size words each), and every wording of the spent held-out
# sets 1-7, so that a run sees ~25 wordings per vertical relation, 14 per horizontal one, 11 per centre and 12 per
# size instead of 6, 3, 4 and 2. Sets 1-7 are training data for such a run; only set 8 (and later) is unseen by it.
# On seeds 0-3 (ablation lines 61-64): seed 0 in the relation coin flip; on the others set-8 relation 74-83% against
# the README recipe's 55-72% ("lounging on", "shoring up" 100%; "elevating" 0-11%), the set-8 centre phrase 3-20%
# (13-77%), set-8 size words 33-41% (36-41%), trained size 78-82% (86-94%). Not adopted.
WIDE_EXTRA = {
    "rel": {"left of": ("west of", "leftward of", "more to the left than"),
            "right of": ("east of", "rightward of", "more to the right than"),
            "above": ("lying on", "perched on", "standing on", "resting on", "piled on"),
            "below": ("lifting up", "hoisting up", "bearing the weight of", "pushing up", "raising up")},
    "size": {"small": ("minuscule", "diminutive"), "large": ("enormous", "gigantic")},
}
WIDE_UNSEEN_SETS = (8, 9)   # the held-out sets whose words a wide run never trains on


def _merged(*tables: dict) -> dict:
    """The union of phrasing tables, each list in first-seen order without repeats."""
    out: dict = {}
    for table in tables:
        for key, value in table.items():
            if isinstance(value, dict):
                out[key] = _merged(out.get(key, {}), value)
            else:
                out[key] = tuple(dict.fromkeys(out.get(key, ()) + tuple(value)))
    return out


WIDE = _merged(PARAPHRASE, WIDE_EXTRA, *(words for n, words in sorted(HELD_OUT_SETS.items())
                                         if n not in WIDE_UNSEEN_SETS))
VOCABULARIES = {"base": PARAPHRASE, "wide": WIDE}   # the extra captions' wordings, by --shapes-vocabulary

# --- vocabulary the parser understands (training and held-out words, plus common synonyms) --------------------------
COLOR_WORDS = {c: c for c in COLORS} | {"magenta": "purple", "violet": "purple", "teal": "cyan", "aqua": "cyan"}
SHAPE_WORDS = {"circle": "circle", "circles": "circle", "disc": "circle", "disk": "circle", "dot": "circle",
               "square": "square", "squares": "square", "box": "square",
               "triangle": "triangle", "triangles": "triangle"}
SIZE_WORDS = {"small": "small", "little": "small", "tiny": "small", "miniature": "small", "mini": "small",
              "large": "large", "big": "large", "huge": "large", "giant": "large", "massive": "large",
              "teeny": "small", "jumbo": "large", "petite": "small", "oversized": "large", "wee": "small",
              "colossal": "large", "microscopic": "small", "slight": "small", "hefty": "large", "mammoth": "large",
              "minuscule": "small", "diminutive": "small", "enormous": "large", "gigantic": "large",
              "puny": "small", "compact": "small", "immense": "large", "whopping": "large",
              "dinky": "small", "undersized": "small", "sizable": "large", "humongous": "large"}
POSITION_WORDS = {"left": "left", "right": "right", "top": "top", "bottom": "bottom", "upper": "top", "lower": "bottom",
                  "centre": "centre", "center": "centre", "middle": "centre", "centred": "centre", "centered": "centre",
                  "central": "centre", "midpoint": "centre", "heart": "centre", "core": "centre",
                  "leftmost": "left", "rightmost": "right", "topmost": "top", "bottommost": "bottom",
                  "halfway": "centre"}
RELATION_PHRASES = {   # longest first when matching
    "to the left of": "left of", "on the left of": "left of", "left of": "left of",
    "further left than": "left of",
    "to the right of": "right of", "on the right of": "right of", "right of": "right of",
    "further right than": "right of",
    "to the west of": "left of", "west of": "left of", "to the east of": "right of", "east of": "right of",
    "on the left hand side of": "left of", "on the right hand side of": "right of",
    "off to the left of": "left of", "off to the right of": "right of",
    "on top of": "above", "above": "above", "over": "above", "higher than": "above", "north of": "above",
    "further up than": "above", "higher up than": "above", "atop": "above", "sitting on": "above",
    "upon": "above", "stacked on": "above", "balanced on": "above", "riding on": "above",
    "underneath": "below", "beneath": "below", "below": "below", "under": "below", "lower than": "below",
    "south of": "below", "further down than": "below", "lower down than": "below", "supporting": "below",
    "at the foot of": "below", "propping up": "below", "holding up": "below", "carrying": "below",
    "at the left of": "left of", "at the right of": "right of", "farther left than": "left of",
    "farther right than": "right of", "mounted on": "above", "floating above": "above", "shouldering": "below",
    "at the base of": "below",
    "just left of": "left of", "just right of": "right of", "hovering above": "above", "topping": "above",
    "underpinning": "below", "at the underside of": "below",
    "on the left flank of": "left of", "on the right flank of": "right of", "crowning": "above", "capping": "above",
    "cradling": "below", "buttressing": "below",
    "leftward of": "left of", "rightward of": "right of", "more to the left than": "left of",
    "more to the right than": "right of", "lying on": "above", "perched on": "above", "standing on": "above",
    "resting on": "above", "piled on": "above", "lifting up": "below", "hoisting up": "below",
    "bearing the weight of": "below", "pushing up": "below", "raising up": "below",
    "leftwards from": "left of", "rightwards from": "right of", "nearer the left edge than": "left of",
    "nearer the right edge than": "right of", "surmounting": "above", "lounging on": "above", "shoring up": "below",
    "elevating": "below",
    "preceding": "left of", "following": "right of", "a bit left of": "left of", "a bit right of": "right of",
    "straddling": "above", "squatting on": "above", "upholding": "below", "cushioning": "below",
}
_REL_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, RELATION_PHRASES), key=len, reverse=True)) + r")\b")
_SIZE_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SIZE_WORDS), key=len, reverse=True)) + r")\b")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _describe(obj: dict, words: dict, with_size: bool, rng: np.random.Generator) -> str:
    size = _pick(rng, words["size"][obj["size"]]) + " " if with_size else ""
    return f"{size}{obj['color']} {obj['shape']}"


def held_out_words(held_out: bool | int) -> dict | None:
    """The evaluation-only wordings ``held_out`` selects: False/0 none (training), True/1 HELD_OUT, 2 HELD_OUT_2,
    3 HELD_OUT_3, ... (every key of HELD_OUT_SETS)."""
    if isinstance(held_out, bool) or held_out in HELD_OUT_SETS or held_out == 0:
        return HELD_OUT_SETS.get(int(held_out))
    later = ", ".join(str(k) for k in sorted(HELD_OUT_SETS) if k > 1)
    raise ValueError(f"held_out must be False, True (set 1) or one of {later} (the later held-out sets), not {held_out!r}")


def paraphrase_words(vocabulary: str) -> dict:
    """The phrasing table of a training vocabulary (``VOCABULARIES``: base, wide); another name raises one line."""
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"unknown shapes vocabulary {vocabulary!r}: choose {' or '.join(VOCABULARIES)}")
    return VOCABULARIES[vocabulary]


def caption(label: dict, rng: np.random.Generator, held_out: bool | int = False, p_size: float = 0.5,
            paraphrase: bool | str = False) -> str:
    """A caption for a scene label in the TRAIN phrasings (or a training paraphrase: ``paraphrase=True`` or
    ``"base"`` PARAPHRASE, ``"wide"`` WIDE; or an evaluation-only set: HELD_OUT for ``held_out=True``, HELD_OUT_2
    for ``held_out=2``, ... HELD_OUT_9 for 9); sizes are named with probability ``p_size`` (both objects or
    neither)."""
    held = held_out_words(held_out)
    if held is not None and paraphrase:
        raise ValueError("a caption is either held out or a training paraphrase, not both")
    if held is not None:
        words = held
    elif paraphrase:
        words = paraphrase_words("base" if paraphrase is True else paraphrase)
    else:
        words = TRAIN
    objects, relation = label["objects"], label.get("relation")
    with_size = bool(rng.random() < p_size)
    if relation is None:
        obj = objects[0]
        where = _pick(rng, words["where"][obj["position"]])
        return _pick(rng, words["single"]).format(obj=_describe(obj, words, with_size, rng), where=where)
    rel = _pick(rng, words["rel"][relation])
    return _pick(rng, words["pair"]).format(a=_describe(objects[0], words, with_size, rng), rel=rel,
                                            b=_describe(objects[1], words, with_size, rng))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _parse_object(text: str, caption_text: str) -> dict:
    obj: dict[str, str] = {}
    for word in _words(text):
        for key, table in (("color", COLOR_WORDS), ("shape", SHAPE_WORDS), ("size", SIZE_WORDS)):
            if word in table:
                if key in obj and obj[key] != table[word]:
                    raise CaptionError(f"caption {caption_text!r} names two {key}s for one shape: "
                                     f"describe each shape once, e.g. 'a red circle left of a blue square'")
                obj[key] = table[word]
    if "shape" not in obj or "color" not in obj:
        missing = "shape" if "shape" not in obj else "colour"
        raise CaptionError(f"cannot parse caption {caption_text!r}: no {missing} word in {text.strip()!r}; "
                         f"use e.g. 'a red circle on the left' (colours: {', '.join(COLORS)}; shapes: {', '.join(SHAPES)})")
    return obj


def relation_wording(text: str) -> str | None:
    """The relation phrase a caption uses ("to the left of", "beneath", ...), or None for a single-object caption."""
    match = _REL_RE.search(" ".join(_words(text)))
    return match.group(1) if match else None


def size_wording(text: str) -> str | None:
    """The first size word a caption uses ("small", "wee", ...), or None where it names no size."""
    match = _SIZE_RE.search(" ".join(_words(text)))
    return match.group(1) if match else None


def parse_caption(text: str) -> dict:
    """Caption → ``{"objects": [...], "relation": ...}`` holding only the attributes the caption names."""
    if not isinstance(text, str):
        raise CaptionError(f"a caption must be a str, not {type(text).__name__}: pass e.g. 'a red circle on the left'")
    low = " ".join(_words(text))
    match = _REL_RE.search(low)
    if match:
        a = _parse_object(low[: match.start()], text)
        b = _parse_object(low[match.end():], text)
        return {"objects": [a, b], "relation": RELATION_PHRASES[match.group(1)]}
    obj = _parse_object(low, text)
    places = {POSITION_WORDS[w] for w in _words(low) if w in POSITION_WORDS}
    if len(places) > 1:
        raise CaptionError(f"caption {text!r} names several positions ({', '.join(sorted(places))}): "
                         f"use one of {', '.join(POSITIONS)}, or a relation such as 'left of'")
    if places:
        obj["position"] = places.pop()
    return {"objects": [obj], "relation": None}

