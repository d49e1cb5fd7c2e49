"""Procedural 32×32 scenes of one or two flat shapes on black, as structured labels, and their rendering.

A label is a plain JSON-able dict::

    {"objects": [{"color": "red", "shape": "circle", "size": "small", "position": "left",
                  "cx": 8.4, "cy": 15.1, "extent": 7.2}, ...],
     "relation": None | "left of" | "right of" | "above" | "below"}   # objects[0] <relation> objects[1]

Geometry is continuous with pixel (i, j) centred at (x, y) = (j + 0.5, i + 0.5). Shapes are drawn with hard edges
(no antialiasing) in six well-separated colours, so the detector in ``detect.py`` can read them back. A triangle points
up and is placed by its area centroid, like every shape, so "position" is where the shape's mass is.
"""
from __future__ import annotations

import numpy as np

SIZE = 32
BACKGROUND = (0, 0, 0)
PALETTE: dict[str, tuple[int, int, int]] = {   # pairwise RGB distance ≥ 140
    "red": (230, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 70, 240),
    "yellow": (240, 220, 30),
    "cyan": (30, 210, 230),
    "purple": (190, 40, 220),
}
COLORS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
EXTENTS = {"small": (7.0, 9.0), "large": (11.5, 13.5)}   # side / diameter in pixels
ANCHORS: dict[str, tuple[float, float]] = {                # (x, y) of each position word
    "left": (8.0, 16.0), "right": (24.0, 16.0), "top": (16.0, 8.0), "bottom": (16.0, 24.0), "centre": (16.0, 16.0),
}
POSITIONS = tuple(ANCHORS)
RELATIONS = ("left of", "right of", "above", "below")
PAIR_POSITIONS = {"left of": ("left", "right"), "right of": ("right", "left"),
                  "above": ("top", "bottom"), "below": ("bottom", "top")}
JITTER = 2.0            # single objects: uniform ± pixels around the anchor, both axes
PAIR_JITTER = (1.0, 3.0)   # two objects: ± along the relation's axis, ± across it
MIN_GAP = 1.5           # two objects: at least this much background between them


def extents(shape: str, e: float) -> tuple[float, float, float, float]:
    """Distances from the placement point to the shape's left, right, top and bottom edges."""
    if shape == "triangle":
        return e / 2, e / 2, 2 * e / 3, e / 3
    return e / 2, e / 2, e / 2, e / 2


def _clamp(shape: str, e: float, x: float, y: float, margin: float = 1.0) -> tuple[float, float]:
    left, right, top, bottom = extents(shape, e)
    return (float(np.clip(x, margin + left, SIZE - margin - right)),
            float(np.clip(y, margin + top, SIZE - margin - bottom)))


def _object(rng: np.random.Generator, color: str, position: str, jitter: tuple[float, float]) -> dict:
    shape = SHAPES[rng.integers(len(SHAPES))]
    size = SIZES[rng.integers(len(SIZES))]
    e = float(rng.uniform(*EXTENTS[size]))
    ax, ay = ANCHORS[position]
    x, y = _clamp(shape, e, ax + rng.uniform(-jitter[0], jitter[0]), ay + rng.uniform(-jitter[1], jitter[1]))
    return {"color": color, "shape": shape, "size": size, "position": position,
            "cx": round(x, 3), "cy": round(y, 3), "extent": round(e, 3)}


REVERSED = ("right of", "below")   # relations whose first-named object is the right / lower one


def sample_scene(rng: np.random.Generator, p_pair: float = 0.5, p_reversed: float = 0.5) -> dict:
    """One random scene label: a single shape at one of five positions, or (probability ``p_pair``) two shapes of
    different colours in a left/right/above/below relation; a ``p_reversed`` share of those relations name the
    right / lower object first ("right of", "below"), the rest the left / upper one ("left of", "above")."""
    if rng.random() >= p_pair:
        color = COLORS[rng.integers(len(COLORS))]
        position = POSITIONS[rng.integers(len(POSITIONS))]
        return {"objects": [_object(rng, color, position, (JITTER, JITTER))], "relation": None}
    if p_reversed == 0.5:   # the balanced draw, one integer, as every seed has always drawn it
        relation = RELATIONS[rng.integers(len(RELATIONS))]
    else:
        reverse, axis = bool(rng.random() < p_reversed), int(rng.integers(2))
        relation = (REVERSED if reverse else ("left of", "above"))[axis]
    c0, c1 = rng.choice(len(COLORS), size=2, replace=False)
    along, across = PAIR_JITTER
    jitter = (along, across) if relation in ("left of", "right of") else (across, along)
    p0, p1 = PAIR_POSITIONS[relation]
    while True:   # redraw the rare pairs (tall triangle under a large square) that would come closer than MIN_GAP
        objects = [_object(rng, COLORS[c0], p0, jitter), _object(rng, COLORS[c1], p1, jitter)]
        if gap(objects[0], objects[1], relation) >= MIN_GAP:
            return {"objects": objects, "relation": relation}


def bbox(obj: dict) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of an object's shape in continuous pixel coordinates."""
    left, right, top, bottom = extents(obj["shape"], obj["extent"])
    return obj["cx"] - left, obj["cy"] - top, obj["cx"] + right, obj["cy"] + bottom


def gap(a: dict, b: dict, relation: str) -> float:
    """Empty space between two objects along their relation's axis."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = bbox(a), bbox(b)
    return max(bx0 - ax1, ax0 - bx1) if relation in ("left of", "right of") else max(by0 - ay1, ay0 - by1)


def shape_mask(shape: str, cx: float, cy: float, e: float, size: int = SIZE) -> np.ndarray:
    """Boolean [size, size] mask of one hard-edged shape placed at (cx, cy) with extent ``e``."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= (e / 2) ** 2
    if shape == "square":
        return (np.abs(x - cx) <= e / 2) & (np.abs(y - cy) <= e / 2)
    if shape == "triangle":   # apex up; centroid at (cx, cy): apex 2e/3 above it, base e/3 below, base width e
        top = cy - 2 * e / 3
        return (y >= top) & (y <= cy + e / 3) & (np.abs(x - cx) <= (y - top) / 2)
    raise ValueError(f"unknown shape {shape!r}: choose one of {', '.join(SHAPES)}")


def render(label: dict, size: int = SIZE) -> np.ndarray:
    """A label's scene as uint8 [size, size, 3] (HWC), shapes drawn in order on black."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for obj in label["objects"]:
        image[shape_mask(obj["shape"], obj["cx"], obj["cy"], obj["extent"], size)] = PALETTE[obj["color"]]
    return image
