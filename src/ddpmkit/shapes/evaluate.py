"""Prompt accuracy for text models trained on the shapes scenes: prompt with captions of held-out scenes, draw one image
per caption, and let the detector judge each image against its scene.

Scenes come from ``ShapesDataset(seed=EVAL_SEED)`` (seed 1, the stream ``load_dataset("shapes", split="test")`` also
uses); training renders its pool from seed 0 (``data.shapes_pool``), so no evaluated scene, nor its exact caption draw,
was trained on. ``held_out=True`` captions the same scenes with the paraphrases training never produces.
"""
from __future__ import annotations

from ..errors import UserError
from .captions import parse_caption, relation_wording, size_wording
from .dataset import ShapesDataset
from .detect import score
from .scene import COLORS, POSITIONS, RELATIONS, SHAPES

TRAIN_SEED = 0     # the seed of the training pool (data.shapes_pool)
EVAL_SEED = 1      # held-out scenes: a stream training never reads
DEFAULT_N = 300

ATTRIBUTES = ("color", "shape", "size", "position", "relation", "count")


def shapes_prompt_set(n: int, held_out: bool | int = False,
                      scene_seed: int = EVAL_SEED) -> tuple[list[str], list[dict]]:
    """The first ``n`` scenes of the held-out stream: (captions, scene labels). About half are two-object scenes, as in
    training. The labels do not depend on ``held_out`` (False: training phrasings; True or 1: held-out set 1; 2-5:
    sets 2-5, ``captions.HELD_OUT_2`` ...); only the wording of the captions does."""
    if scene_seed == TRAIN_SEED:
        raise UserError(f"scene seed {TRAIN_SEED} is the training pool's: evaluate on another, e.g. {EVAL_SEED}")
    ds = ShapesDataset(seed=scene_seed, held_out=held_out)
    items = [ds.label(i) for i in range(n)]
    return [text for _, text in items], [label for label, _ in items]


def prompt_target(label: dict, text: str) -> dict:
    """What an image for caption ``text`` of scene ``label`` is judged against: every object's colour, shape and
    position (ground truth), its size only where the caption names sizes, and the relation of a two-object scene."""
    said = parse_caption(text)
    if ([(o["color"], o["shape"]) for o in said["objects"]] != [(o["color"], o["shape"]) for o in label["objects"]]
            or said["relation"] != label.get("relation")):
        raise ValueError(f"caption {text!r} does not read back as its scene {label!r}")
    objects = []
    for obj, named in zip(label["objects"], said["objects"]):
        target = {k: obj[k] for k in ("color", "shape", "position")}
        if "size" in named:
            target["size"] = obj["size"]
        objects.append(target)
    return {"objects": objects, "relation": label.get("relation")}


def judge(image, target: dict) -> dict[str, bool]:
    """One image against one ``prompt_target``, judged on the image's *main* objects: the k largest the detector finds
    (k = objects in the scene), paired with the prompted ones as ``detect.match`` pairs them (by colour, else the
    largest left). So a stray speck neither rescues an attribute (a 4-pixel dot of the prompted colour beside a
    wrongly coloured shape) nor spoils one; ``count`` alone says whether the image holds other objects. On an image
    with exactly k objects this is ``detect.score`` (it is ``detect.score(..., largest_only=True)``).

    Keys: ``count``, ``color``, ``shape``, ``size`` (where the prompt names sizes), ``position`` (single-object
    scenes), ``relation`` and ``pair_position`` (two-object scenes: both objects at their scene's anchors, a
    diagnostic the prompt does not name), and ``all``: every key but ``pair_position``."""
    out = score(image, target, largest_only=True)
    if target.get("relation") is not None:
        out["pair_position"] = out.pop("position")
    out["all"] = all(v for k, v in out.items() if k != "pair_position")
    return out


def _mean(values: list[bool]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def shapes_prompt_accuracy(pipe, n: int = DEFAULT_N, seed: int = 0, held_out: bool | int = False, *,
                           scene_seed: int = EVAL_SEED, batch_size: int = 250, **gen_kwargs) -> dict:
    """Share of generated shape scenes that the detector (``shapes.detect``) finds true to their prompt.

    ``n`` held-out scenes are captioned (training phrasings, or the paraphrases never trained on: set 1 with
    ``held_out=True``, set 2 to 5 with ``held_out=2`` ... ``5``), one image is drawn per caption
    (``generate_batched``: batch b uses seed ``seed + b``; ``gen_kwargs`` go to ``Pipeline.generate``: guidance,
    steps, sampler, ...), and each image is judged against its scene's label.

    Each image is judged on its main objects (``judge``): the k largest objects the detector finds, k being the
    scene's number of objects, each prompted object paired with one of them of its colour, else with the largest one
    left. Attribute accuracies (an attribute holds for a two-object scene only when it holds for *both* objects):

    - ``color``: the main objects have the prompted colours (each prompted object has a main object of its colour).
      All scenes.
    - ``shape``: the main object paired with each prompted object has its shape. All scenes.
    - ``size``: the paired objects have the scene's sizes. Only scenes whose caption names sizes (about half).
    - ``position``: the object's centroid is nearest the named anchor (left/right/top/bottom/centre). Single-object
      scenes only, the only prompts that name a position.
    - ``relation``: object 1's centroid is left of/right of/above/below object 2's by ≥ 3 px along the relation's
      axis, which dominates. Two-object scenes only.
    - ``count``: the detector finds exactly as many objects (≥ 4 px) as the scene has. All scenes.
    - ``accuracy`` (overall): every attribute the prompt names holds, and the count; i.e. colour, shape, count, size
      where named, plus position (single) or relation (pair).

    ``single`` and ``pair`` repeat these per scene kind. ``pair["position"]`` is a diagnostic outside ``accuracy``:
    both objects of a pair at the anchors training places them (left/right for left of/right of, top/bottom for
    above/below), which the prompt implies in training but does not say. ``per_color``/``per_shape``/``per_position``
    give that attribute's accuracy per prompted value over single-object scenes, ``per_relation`` relation accuracy per
    relation and ``per_relation_wording`` per relation phrase of the prompts ("above", "on top of", ...);
    ``per_size_wording`` size accuracy per size word of the single-object prompts that name one, ``per_size`` per
    prompted size (small, large) over those prompts, and ``size_balanced`` the mean of the two. A group with no scenes
    is ``None``.

    ``size_balanced`` is the figure that says whether size words are read. Guidance makes an object whose size the
    prompt does not name large (the README's shapes model at w = 3 draws 45 of 48 unsized objects large;
    ``benchmarks/size_default.py``), so a model that ignores a size word scores about 100% on large-words and 0% on
    small-words: ``size`` then depends on how many prompts say "large", while ``size_balanced`` is about 50% for any
    such model.
    """
    from ..evaluate import generate_batched

    if not pipe.is_text_model:
        raise UserError("prompt accuracy needs a text-conditioned model: train with --text-encoder")
    if n <= 0:
        raise UserError(f"n must be positive, got {n}")
    prompts, labels = shapes_prompt_set(n, held_out, scene_seed)
    targets = [prompt_target(label, text) for label, text in zip(labels, prompts)]
    images = generate_batched(pipe, prompts, n, batch_size=batch_size, seed=seed, **gen_kwargs)
    if images.shape[1:] != (3, 32, 32):
        raise UserError(f"shapes prompt accuracy needs 3x32x32 images, the model draws "
                        f"{'x'.join(map(str, images.shape[1:]))}: evaluate a run trained with --dataset shapes")
    verdicts = [judge(image, target) for image, target in zip(images, targets)]

    def summary(rows: list[dict], keys: tuple[str, ...]) -> dict:
        out: dict = {"n": len(rows), "accuracy": _mean([r["all"] for r in rows])}
        for k in keys:
            out[k] = _mean([r[k] for r in rows if k in r])
        return out

    singles = [v for v, t in zip(verdicts, targets) if t["relation"] is None]
    pairs = [v for v, t in zip(verdicts, targets) if t["relation"] is not None]
    single_targets = [t["objects"][0] for t in targets if t["relation"] is None]
    wordings = [relation_wording(p) for p, t in zip(prompts, targets) if t["relation"] is not None]
    size_words = [size_wording(p) for p, t in zip(prompts, targets) if t["relation"] is None]

    def per(values: tuple[str, ...], key: str, rows, keyed) -> dict:
        return {v: _mean([r[key] for r, k in zip(rows, keyed) if k == v]) for v in values}

    prompted_sizes = [t.get("size") for t in single_targets]
    per_size = per(("small", "large"), "size", singles, prompted_sizes)
    attributes = summary(verdicts, ATTRIBUTES)
    attributes.pop("n")
    overall = attributes.pop("accuracy")
    return {
        "metric": "prompt-accuracy", "dataset": "shapes", "accuracy": overall, "attributes": attributes,
        "single": summary(singles, ("color", "shape", "size", "position", "count")),
        "pair": {**summary(pairs, ("color", "shape", "size", "relation", "count")),
                 "position": _mean([r["pair_position"] for r in pairs])},
        "per_color": per(COLORS, "color", singles, [t["color"] for t in single_targets]),
        "per_shape": per(SHAPES, "shape", singles, [t["shape"] for t in single_targets]),
        "per_position": per(POSITIONS, "position", singles, [t["position"] for t in single_targets]),
        "per_relation": per(RELATIONS, "relation", pairs, [t["relation"] for t in targets if t["relation"]]),
        "per_relation_wording": per(tuple(sorted(set(wordings))), "relation", pairs, wordings),
        "per_size_wording": per(tuple(sorted(set(size_words) - {None})), "size", singles, size_words),
        "per_size": per_size,
        "size_balanced": None if None in per_size.values() else (per_size["small"] + per_size["large"]) / 2,
        "n": n, "counts": {"single": len(singles), "pair": len(pairs),
                           "size_named": sum("size" in v for v in verdicts)},
        "held_out_phrasings": held_out, "scene_seed": scene_seed, "seed": seed,
    }


def format_result(res: dict) -> str:
    """One line for the CLI."""
    def pct(x, digits=0):
        return "n/a" if x is None else f"{x:.{digits}%}"

    def pct1(x):
        return pct(x, 1)
    a, c = res["attributes"], res["counts"]
    return (f"shapes prompt accuracy {pct1(res['accuracy'])} on {res['n']} scenes ({c['single']} single, "
            f"{c['pair']} pairs): color {pct(a['color'])}, shape {pct(a['shape'])}, size {pct(a['size'])} "
            f"(of {c['size_named']} naming sizes; small/large balanced {pct(res['size_balanced'])}), "
            f"position {pct(a['position'])} (single), relation "
            f"{pct(a['relation'])} (pairs), count {pct(a['count'])}")


__all__ = ["shapes_prompt_accuracy", "shapes_prompt_set", "prompt_target", "judge", "format_result", "EVAL_SEED"]
