"""The shapes detector: ≥ 98% per attribute on rendered ground truth, and it notices wrong prompts."""
import numpy as np
import pytest

from ddpmkit.shapes import ShapesDataset, detect, parse_caption, render, score

ATTRIBUTES = ("count", "color", "shape", "size", "position", "relation")


def accuracy(images_labels):
    hits = {k: [] for k in ATTRIBUTES + ("all",)}
    for image, label in images_labels:
        for k, v in score(image, label).items():
            hits[k].append(v)
    return {k: float(np.mean(v)) for k, v in hits.items() if v}


def test_detector_reads_rendered_ground_truth_at_least_98_percent():
    ds = ShapesDataset(seed=2024, image_format="uint8")
    acc = accuracy((ds[i][0], ds[i][2]) for i in range(300))
    assert set(acc) == set(ATTRIBUTES) | {"all"}
    assert all(v >= 0.98 for v in acc.values()), acc


def test_detector_tolerates_mild_noise():
    ds = ShapesDataset(seed=9, image_format="uint8")
    rng = np.random.default_rng(0)
    noisy = ((np.clip(ds[i][0] + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8), ds[i][2])
             for i in range(100))
    assert accuracy(noisy)["all"] >= 0.95


def test_detector_reads_a_hand_made_scene():
    label = {"objects": [{"color": "yellow", "shape": "triangle", "size": "large", "position": "top",
                          "cx": 16.0, "cy": 10.0, "extent": 12.0},
                         {"color": "blue", "shape": "square", "size": "small", "position": "bottom",
                          "cx": 15.0, "cy": 24.0, "extent": 8.0}], "relation": "above"}
    found = detect(render(label))
    assert [(o["color"], o["shape"], o["size"], o["position"]) for o in found] == [
        ("yellow", "triangle", "large", "top"), ("blue", "square", "small", "bottom")]
    assert score(render(label), parse_caption("a big yellow triangle above a small blue square"))["all"]


@pytest.mark.parametrize("prompt, wrong", [
    ("a yellow triangle below a blue square", "relation"),
    ("a red triangle above a blue square", "color"),
    ("a yellow circle above a blue square", "shape"),
    ("a small yellow triangle above a small blue square", "size"),
    ("a red circle in the centre", "count"),
])
def test_score_flags_each_wrong_attribute(prompt, wrong):
    label = {"objects": [{"color": "yellow", "shape": "triangle", "size": "large", "position": "top",
                          "cx": 16.0, "cy": 10.0, "extent": 12.0},
                         {"color": "blue", "shape": "square", "size": "small", "position": "bottom",
                          "cx": 15.0, "cy": 24.0, "extent": 8.0}], "relation": "above"}
    result = score(render(label), parse_caption(prompt))
    assert result[wrong] is False and result["all"] is False


def test_position_is_read_from_the_centroid():
    ds = ShapesDataset(seed=1, image_format="uint8", p_pair=0.0)
    image, _, label = ds[0]
    obj = label["objects"][0]
    right = score(image, {"objects": [{"color": obj["color"], "shape": obj["shape"], "position": obj["position"]}]})
    other = "left" if obj["position"] != "left" else "right"
    wrong = score(image, {"objects": [{"color": obj["color"], "shape": obj["shape"], "position": other}]})
    assert right["position"] and not wrong["position"] and wrong["color"] and wrong["shape"]


def test_float_chw_input_scores_like_uint8():
    x, _, label = ShapesDataset(seed=6)[3]
    u, _, _ = ShapesDataset(seed=6, image_format="uint8")[3]
    assert score(x, label) == score(u, label)
