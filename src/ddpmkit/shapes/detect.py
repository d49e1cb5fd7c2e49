"""A programmatic detector for shape scenes: reads colour, shape, size and position back from pixels and scores an
image against a (parsed or ground-truth) label.

Pipeline: each bright enough pixel goes to its nearest palette hue (else it is background) → connected components per
colour (8-connected) → components of at least ``MIN_AREA`` pixels are objects. Shape: the template (circle, square,
upright triangle) of the component's area and centroid that overlaps it best; size from that template's extent;
position from the centroid's nearest anchor.
"""
from __future__ import annotations

import numpy as np
import torch

from .scene import ANCHORS, PALETTE, SIZE, shape_mask

MIN_AREA = 4              # pixels; smaller specks are noise
LARGE_MIN_EXTENT = 10.25  # fitted side/diameter (pixels) from which a shape is "large" (scenes draw ≤ 9 and ≥ 11.5)
RELATION_MIN_OFFSET = 3.0  # pixels the centroids must differ along the relation's axis

FOREGROUND_MIN = 90      # brightest channel (0-255) from which a pixel is part of a shape; palette colours reach ≥ 220

_NAMES = ("background",) + tuple(PALETTE)
_PALETTE = np.array(list(PALETTE.values()), dtype=np.float32)
_CHROMA = _PALETTE / _PALETTE.max(axis=1, keepdims=True)   # [6, 3]
_ANCHOR_NAMES = tuple(ANCHORS)
_ANCHOR_XY = np.array([ANCHORS[k] for k in _ANCHOR_NAMES], dtype=np.float32)


def to_uint8_hwc(image) -> np.ndarray:
    """uint8 HWC array, or a float CHW tensor/array in [-1, 1] (the library's convention) → uint8 HWC."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.ndim == 3 and image.shape[0] == 3:
        image = image.transpose(1, 2, 0)
    return np.clip(np.round((image.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def colour_map(image: np.ndarray) -> np.ndarray:
    """[H, W] int: 0 for background, k ≥ 1 for the k-th palette colour.

    A pixel is foreground when its brightest channel reaches ``FOREGROUND_MIN``; its colour is the nearest palette
    colour after both are scaled to a brightest channel of 1, so a darkened or blurred edge keeps its hue.
    """
    pix = image.astype(np.float32)
    value = pix.max(axis=-1)
    chroma = pix / np.maximum(value, 1.0)[..., None]
    nearest = np.argmin(((chroma[:, :, None, :] - _CHROMA) ** 2).sum(-1), axis=-1) + 1
    return np.where(value >= FOREGROUND_MIN, nearest, 0)


def components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a boolean mask, each as an [n, 2] array of (row, col)."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    out = []
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        stack, pixels = [(r0, c0)], []
        while stack:
            r, c = stack.pop()
            pixels.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        stack.append((rr, cc))
        out.append(np.array(pixels))
    return out


def fit_shape(pixels: np.ndarray, size: int = SIZE) -> tuple[str, float, float]:
    """Best-fitting shape for a component: each of circle, square and triangle is drawn with the component's area and
    centroid (a triangle upright, as scenes draw it); the one overlapping the component most (IoU) wins.

    Returns (shape, extent of that shape in pixels, IoU). Area and centroid barely move when a few stray pixels join
    or a blurred edge leaves, so the fit is steadier than bounding-box rules."""
    mask = np.zeros((size, size), dtype=bool)
    mask[pixels[:, 0], pixels[:, 1]] = True
    area = float(len(pixels))
    cx, cy = pixels[:, 1].mean() + 0.5, pixels[:, 0].mean() + 0.5
    best = ("circle", 0.0, -1.0)
    for shape, extent in (("circle", 2.0 * np.sqrt(area / np.pi)), ("square", np.sqrt(area)),
                          ("triangle", np.sqrt(2.0 * area))):
        template = shape_mask(shape, cx, cy, extent, size)
        iou = np.sum(mask & template) / max(1, np.sum(mask | template))
        if iou > best[2]:
            best = (shape, float(extent), float(iou))
    return best


def detect(image) -> list[dict]:
    """Objects in an image, largest first: colour, shape, size, position, centroid (cx, cy), area, bbox."""
    image = to_uint8_hwc(image)
    cmap = colour_map(image)
    found = []
    for k in range(1, len(_NAMES)):
        for pixels in components(cmap == k):
            if len(pixels) < MIN_AREA:
                continue
            rows, cols = pixels[:, 0], pixels[:, 1]
            cx, cy = float(cols.mean() + 0.5), float(rows.mean() + 0.5)
            shape, extent, fit = fit_shape(pixels, cmap.shape[0])
            anchor = int(np.argmin(((_ANCHOR_XY - (cx, cy)) ** 2).sum(-1)))
            found.append({"color": _NAMES[k], "shape": shape, "extent": extent, "fit": fit,
                          "size": "large" if extent >= LARGE_MIN_EXTENT else "small",
                          "position": _ANCHOR_NAMES[anchor], "cx": cx, "cy": cy, "area": int(len(pixels)),
                          "bbox": (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)})
    found.sort(key=lambda o: -o["area"])
    return found


def relation_holds(a: dict, b: dict, relation: str) -> bool:
    """Whether object ``a`` is <relation> object ``b`` (centroids; the dominant axis decides)."""
    dx, dy = b["cx"] - a["cx"], b["cy"] - a["cy"]
    if relation in ("left of", "right of"):
        d = dx if relation == "left of" else -dx
        return d >= RELATION_MIN_OFFSET and abs(dx) >= abs(dy)
    if relation in ("above", "below"):
        d = dy if relation == "above" else -dy
        return d >= RELATION_MIN_OFFSET and abs(dy) >= abs(dx)
    raise ValueError(f"unknown relation {relation!r}: use 'left of', 'right of', 'above' or 'below'")


def match(objects: list[dict], targets: list[dict]) -> list[dict | None]:
    """Pair each target with a detected object: first by colour (preferring the target's shape, then the larger),
    then targets with no object of their colour take the largest object left, so shape and position are still judged."""
    free = list(objects)
    chosen: list[dict | None] = [None] * len(targets)
    for i, t in enumerate(targets):
        same = [o for o in free if o["color"] == t.get("color")]
        if same:
            best = max(same, key=lambda o: (o["shape"] == t.get("shape"), o["area"]))
            chosen[i] = best
            free.remove(best)
    for i, t in enumerate(targets):
        if chosen[i] is None and free:
            chosen[i] = free.pop(0)
    return chosen


def score(image, label: dict, largest_only: bool = False) -> dict[str, bool]:
    """Judge an image against a label (e.g. ``parse_caption(prompt)`` or a ground-truth scene label).
    ``largest_only``: pair the label's objects with the image's k largest detected objects only (k = objects in the
    label), so stray specks cannot stand in for a prompted object; ``count`` still sees every object.

    Keys: ``count`` (as many objects as the label), ``color``, ``shape``, plus ``size``/``position`` where the label
    names them and ``relation`` for two-object labels; ``all`` is their conjunction. An attribute holds when it holds
    for every object in the label.
    """
    targets = label["objects"]
    objects = detect(image)
    chosen = match(objects[:len(targets)] if largest_only else objects, targets)
    out = {"count": len(objects) == len(targets)}
    for key in ("color", "shape", "size", "position"):
        named = [(t, o) for t, o in zip(targets, chosen) if key in t]
        if named:
            out[key] = all(o is not None and o[key] == t[key] for t, o in named)
    relation = label.get("relation")
    if relation is not None:
        a, b = chosen[0], chosen[1] if len(chosen) > 1 else None
        out["relation"] = a is not None and b is not None and relation_holds(a, b, relation)
    out["all"] = all(out.values())
    return out
