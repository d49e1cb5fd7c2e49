"""Prompt accuracy for shapes text models: the plumbing scores a perfect model ~1 and a blank one 0 on every attribute,
the attributes are judged independently, and `ddpmkit evaluate --metric prompt-accuracy` dispatches on the dataset."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ddpmkit.errors import UserError
from ddpmkit.evaluate import prompt_accuracy, shapes_prompt_accuracy
from ddpmkit.shapes import PALETTE, ShapesDataset, parse_caption, render, score
from ddpmkit.shapes.captions import HELD_OUT_SETS, relation_wording, size_wording
from ddpmkit.shapes.evaluate import EVAL_SEED, judge, prompt_target, shapes_prompt_set

N = 200
ATTRIBUTES = ("color", "shape", "size", "position", "relation", "count")


class FakePipe:
    """Stands in for a trained shapes text model: ``generate`` draws the scene each prompt was made from (looked up
    among the evaluation scenes, in order), transformed by ``draw`` (the ground truth, a blank, a mirror image)."""

    is_text_model = True
    config = SimpleNamespace(train=SimpleNamespace(dataset="shapes"))

    def __init__(self, draw, held_out=False):
        self.draw, self.calls, self.lookup = draw, [], {}
        ds = ShapesDataset(seed=EVAL_SEED, held_out=held_out)
        for i in range(N):
            label, text = ds.label(i)
            self.lookup.setdefault(text, []).append(label)

    def generate(self, prompt, n=8, seed=0, **kwargs):
        assert isinstance(prompt, list) and len(prompt) == n
        self.calls.append((n, seed, kwargs))
        images = [self.draw(self.lookup[p].pop(0)) for p in prompt]
        return torch.stack([torch.from_numpy(im).permute(2, 0, 1).float() / 127.5 - 1.0 for im in images])


def mirror(label):
    return render(label)[:, ::-1].copy()


def check_shape(res, n):
    assert res["metric"] == "prompt-accuracy" and res["dataset"] == "shapes" and res["n"] == n
    assert set(res["attributes"]) == set(ATTRIBUTES)
    c = res["counts"]
    assert c["single"] + c["pair"] == n and c["single"] > 0.3 * n and c["pair"] > 0.3 * n
    assert 0.3 * n < c["size_named"] < 0.7 * n
    assert res["single"]["n"] == c["single"] and res["pair"]["n"] == c["pair"]
    json.dumps(res, allow_nan=False)


def test_the_rendered_ground_truth_scores_at_least_98_percent_everywhere():
    pipe = FakePipe(render)
    res = shapes_prompt_accuracy(pipe, n=N, seed=5, batch_size=64, guidance=2.0, steps=7)
    check_shape(res, N)
    scores = [res["accuracy"], *res["attributes"].values(), res["pair"]["position"],
              *(v for k in ("single", "pair") for kk, v in res[k].items() if kk != "n")]
    assert all(v >= 0.98 for v in scores), res
    assert all(v is None or v >= 0.9 for k in ("per_color", "per_shape", "per_position", "per_relation")
               for v in res[k].values()), res
    # batches of 64 with seeds seed + b, generation arguments passed through
    assert [(n, s) for n, s, _ in pipe.calls] == [(64, 5), (64, 6), (64, 7), (8, 8)]
    assert all(kw == {"guidance": 2.0, "steps": 7} for _, _, kw in pipe.calls)
    assert all(not v for v in pipe.lookup.values())   # every scene drawn exactly once


@pytest.mark.parametrize("held_out", [True, 2, 3, 4, 9])
def test_held_out_paraphrases_prompt_the_same_scenes_in_other_words(held_out):
    train_prompts, train_labels = shapes_prompt_set(N)
    held_prompts, held_labels = shapes_prompt_set(N, held_out=held_out)
    assert held_labels == train_labels
    assert sum(a != b for a, b in zip(train_prompts, held_prompts)) > 0.9 * N
    res = shapes_prompt_accuracy(FakePipe(render, held_out=held_out), n=N, held_out=held_out)
    assert res["held_out_phrasings"] == held_out and res["accuracy"] >= 0.98
    # relation accuracy per wording: every wording the prompts used, each read right on the true scenes
    words = HELD_OUT_SETS[held_out]["rel"]
    used = {relation_wording(p) for p in held_prompts} - {None}
    assert set(res["per_relation_wording"]) == used and used <= {w for ws in words.values() for w in ws}
    assert len(used) >= 4 and all(v >= 0.9 for v in res["per_relation_wording"].values()), res["per_relation_wording"]
    sizes = {size_wording(p) for p, lab in zip(held_prompts, held_labels) if lab["relation"] is None} - {None}
    assert set(res["per_size_wording"]) == sizes and sizes <= {w for ws in HELD_OUT_SETS[held_out]["size"].values()
                                                               for w in ws}
    assert sizes and all(v >= 0.9 for v in res["per_size_wording"].values()), res["per_size_wording"]
    assert all(v >= 0.9 for v in res["per_size"].values()) and res["size_balanced"] >= 0.9, res["per_size"]


def test_shapes_drawn_at_the_other_size_miss_size_for_every_size_word():
    from ddpmkit.shapes.scene import EXTENTS
    swap = {"small": "large", "large": "small"}      # each object drawn at the middle extent of the other size
    res = shapes_prompt_accuracy(FakePipe(lambda lab: render(
        {**lab, "objects": [{**o, "extent": float(np.mean(EXTENTS[swap[o["size"]]]))} for o in lab["objects"]]})),
        n=N)
    assert res["attributes"]["size"] <= 0.02 and res["attributes"]["color"] >= 0.98, res["attributes"]
    assert set(res["per_size_wording"]) == {"small", "large"} and not any(res["per_size_wording"].values())
    assert res["per_size"] == {"small": 0.0, "large": 0.0} and res["size_balanced"] == 0.0


def test_a_model_that_draws_every_shape_large_reads_no_size_word_and_scores_half_balanced():
    """What guidance does to a prompt whose size word a model cannot read: the object comes out large. Plain size
    accuracy then rewards large-words; the balanced figure says 50%, as for any model that ignores the word."""
    from ddpmkit.shapes.scene import EXTENTS
    big = float(np.mean(EXTENTS["large"]))
    res = shapes_prompt_accuracy(FakePipe(lambda lab: render(
        {**lab, "objects": [{**o, "extent": big} for o in lab["objects"]]})), n=N)
    prompts, labels = shapes_prompt_set(N)
    named = [lab["objects"][0]["size"] for p, lab in zip(prompts, labels)
             if lab["relation"] is None and size_wording(p) is not None]
    assert res["per_size"] == {"small": 0.0, "large": 1.0} and res["size_balanced"] == 0.5
    assert res["single"]["size"] == pytest.approx(named.count("large") / len(named))
    assert 0.3 < named.count("large") / len(named) < 0.7


def test_the_evaluated_scenes_are_not_the_training_pool():
    prompts, labels = shapes_prompt_set(50)
    train = ShapesDataset(seed=0)
    assert sum(train.label(i)[0] == lab for i, lab in enumerate(labels)) == 0
    with pytest.raises(UserError, match="training"):
        shapes_prompt_set(10, scene_seed=0)


def test_blank_images_score_zero():
    res = shapes_prompt_accuracy(FakePipe(lambda label: np.zeros((32, 32, 3), np.uint8)), n=N)
    check_shape(res, N)
    assert res["accuracy"] <= 0.02 and all(v <= 0.02 for v in res["attributes"].values()), res


def test_a_mirror_image_gets_only_the_horizontal_attributes_wrong():
    """Flipped left-right, colour, shape (triangles are symmetric), size and count stay right; position is right only
    for top/bottom/centre, relation only for above/below."""
    res = shapes_prompt_accuracy(FakePipe(mirror), n=N)
    prompts, labels = shapes_prompt_set(N)
    singles = [lab["objects"][0]["position"] for lab in labels if lab["relation"] is None]
    pairs = [lab["relation"] for lab in labels if lab["relation"] is not None]
    vertical_position = np.mean([p in ("top", "bottom", "centre") for p in singles])
    vertical_relation = np.mean([r in ("above", "below") for r in pairs])
    a = res["attributes"]
    assert min(a["color"], a["shape"], a["size"], a["count"]) >= 0.98, res
    assert a["position"] == pytest.approx(vertical_position, abs=0.02)
    assert a["relation"] == pytest.approx(vertical_relation, abs=0.02)
    assert res["per_position"]["left"] == res["per_position"]["right"] == 0.0
    assert res["per_relation"]["left of"] == res["per_relation"]["right of"] == 0.0
    assert res["per_position"]["top"] >= 0.9 and res["per_relation"]["above"] >= 0.9


def test_noise_does_not_pass_for_colour_or_shape():
    """Colourful noise holds specks of every colour; judged on its main objects it gets colours right only by chance
    (detect.score, which searches every speck, would give it ~99% colour)."""
    g = torch.Generator().manual_seed(0)
    res = shapes_prompt_accuracy(FakePipe(lambda label: (torch.rand(32, 32, 3, generator=g) * 255).byte().numpy()),
                                 n=100)
    a = res["attributes"]
    assert a["count"] == 0.0 and res["accuracy"] == 0.0
    assert a["color"] < 0.35 and a["shape"] < 0.4, a


def test_a_speck_neither_rescues_nor_spoils_an_attribute():
    label = {"objects": [{"color": "red", "shape": "square", "size": "large", "position": "centre",
                          "cx": 16.0, "cy": 16.0, "extent": 12.0}], "relation": None}
    target = prompt_target(label, "a large red square in the centre")
    wrong = render({**label, "objects": [{**label["objects"][0], "color": "blue"}]})
    wrong[1:3, 1:3] = PALETTE["red"]                        # a 4-pixel red speck in the corner
    assert score(wrong, target)["color"]                   # the raw detector score finds the speck ...
    r = judge(wrong, target)
    assert not r["color"] and not r["count"] and r["shape"] and r["position"]   # ... the main object is blue
    right = render(label)
    right[28:30, 1:3] = PALETTE["green"]
    r = judge(right, target)
    assert r["color"] and r["shape"] and r["size"] and r["position"] and not r["count"] and not r["all"]


def test_judge_is_the_detector_score_on_clean_scenes():
    prompts, labels = shapes_prompt_set(100)
    for text, label in zip(prompts, labels):
        target = prompt_target(label, text)
        image = render(label)
        r, s = judge(image, target), score(image, target)
        assert {k: v for k, v in r.items() if k not in ("all", "pair_position")} == \
               {k: v for k, v in s.items() if k not in ("all", "position")} | \
               ({"position": s["position"]} if label["relation"] is None else {})
        if label["relation"] is not None:
            assert r["pair_position"] == s["position"]


def test_size_is_judged_only_where_the_caption_names_it():
    """A model drawing every shape at the other size fails size exactly on the prompts that name one."""
    def resized(label):
        flip = {"small": 12.5, "large": 8.0}
        objs = [{**o, "extent": flip[o["size"]]} for o in label["objects"]]
        return render({**label, "objects": objs})
    res = shapes_prompt_accuracy(FakePipe(resized), n=60)
    assert res["attributes"]["size"] <= 0.05 and res["attributes"]["color"] >= 0.95
    prompts, _ = shapes_prompt_set(60)
    named = [("size" in parse_caption(p)["objects"][0]) for p in prompts]
    assert res["counts"]["size_named"] == sum(named)
    # prompts that do not name a size may still be all-correct
    assert res["accuracy"] > 0.3


def test_prompt_accuracy_dispatches_on_the_dataset_and_refuses_unconditional_models():
    res = prompt_accuracy(FakePipe(render), n_per_digit=1, n_scenes=20)
    assert res["dataset"] == "shapes" and res["n"] == 20
    unconditional = FakePipe(render)
    unconditional.is_text_model = False
    with pytest.raises(UserError, match="text"):
        shapes_prompt_accuracy(unconditional, n=5)
    digits = FakePipe(render)
    digits.config = SimpleNamespace(train=SimpleNamespace(dataset="mnist"))
    with pytest.raises(UserError, match="MNIST has one set of held-out phrasings"):   # before drawing anything
        prompt_accuracy(digits, n_per_digit=1, held_out=2)


def test_cli_evaluates_a_tiny_shapes_text_run(tmp_path, capsys, monkeypatch):
    import ddpmkit.data
    from ddpmkit.cli import main
    from ddpmkit.config import DiffusionConfig, RunConfig, TrainConfig
    from ddpmkit.train import Trainer

    monkeypatch.setattr(ddpmkit.data, "SHAPES_POOL", 16)   # a small pool: few captions to encode
    tc = TrainConfig(dataset="shapes", preset="micro", steps=2, batch_size=4, sample_every=100, save_every=100,
                     sample_n=2, sample_steps=2, log_every=1, text_encoder="all-MiniLM-L6-v2")
    Trainer(tmp_path / "run", RunConfig(diffusion=DiffusionConfig(num_timesteps=20), train=tc), progress=False).train()
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--metric", "prompt-accuracy", "--n", "6", "--steps", "2",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["dataset"] == "shapes" and res["n"] == 6 and set(res["attributes"]) == set(ATTRIBUTES)
    assert 0.0 <= res["accuracy"] <= 1.0
    assert main(["evaluate", str(tmp_path / "run"), "--metric", "prompt-accuracy", "--n", "4", "--steps", "2",
                 "--held-out-phrasings"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("shapes prompt accuracy") and "relation" in out[0], out
    assert "balanced" in out[0], out
    last = max(HELD_OUT_SETS)   # the option's range follows the sets the captions module holds
    for flags, held_out in ((["--held-out-phrasings"], True), (["--held-out-set", "2"], 2),
                            (["--held-out-set", str(last)], last)):
        assert main(["evaluate", str(tmp_path / "run"), "--metric", "prompt-accuracy", "--n", "4", "--steps", "2",
                     *flags, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["held_out_phrasings"] == held_out
    assert main(["evaluate", str(tmp_path / "run"), "--metric", "prompt-accuracy", "--held-out-set",
                 str(last + 1)]) != 0


def test_shapes_captions_and_pairs_shape_the_training_pool(monkeypatch):
    """--shapes-captions N gives each training scene N phrasings (its template caption first, then paraphrases of the
    same scene); --shapes-pairs sets the two-object share; both reach the pool through the trainer's dataset call."""
    import ddpmkit.data

    monkeypatch.setattr(ddpmkit.data, "SHAPES_POOL", 200)
    base = ddpmkit.data.load_dataset("shapes")
    assert all(len(c) == 1 for c in base.captions)
    data = ddpmkit.data.load_dataset("shapes", shapes_captions=3, shapes_pairs=1.0)
    assert all(len(c) == 3 and len(set(c)) > 1 for c in data.captions)
    assert all(lab.get("relation") for lab in data.scene_labels)
    for caps, lab in zip(data.captions[:20], data.scene_labels[:20]):
        colours = [o["color"] for o in lab["objects"]]
        assert all([o["color"] for o in parse_caption(c)["objects"]] == colours for c in caps)
    wide = ddpmkit.data.load_dataset("shapes", shapes_captions=3, shapes_pairs=1.0, shapes_vocabulary="wide")
    assert [c[0] for c in wide.captions] == [c[0] for c in data.captions] and wide.captions != data.captions
    singles = ddpmkit.data.load_dataset("shapes", shapes_pairs=0.0).scene_labels
    assert not any(lab.get("relation") for lab in singles)


def test_shapes_forward_steps_draws_no_reversed_pair_until_then(tmp_path, monkeypatch):
    """The curriculum: for the first N steps every drawn scene is a single object or a pair named left / upper object
    first ("left of", "above"); after it the whole pool, reversed pairs too."""
    import ddpmkit.data
    from ddpmkit.config import DiffusionConfig, RunConfig, TrainConfig
    from ddpmkit.shapes.scene import REVERSED
    from ddpmkit.train import Trainer

    monkeypatch.setattr(ddpmkit.data, "SHAPES_POOL", 200)
    cfg = RunConfig(diffusion=DiffusionConfig(num_timesteps=50),
                    train=TrainConfig(dataset="shapes", preset="micro", steps=6, batch_size=16, shapes_pairs=1.0,
                                      shapes_forward_steps=3, sample_every=1000, save_every=1000, sample_n=2,
                                      sample_steps=2))
    trainer = Trainer(tmp_path / "run", cfg, progress=False)
    drawn, batch = [], trainer.data.batch
    monkeypatch.setattr(trainer.data, "batch", lambda idx: (drawn.append(idx.clone()), batch(idx))[1])
    trainer.train()
    relations = [[trainer.data.scene_labels[i]["relation"] for i in idx] for idx in drawn]
    assert len(relations) == 6
    assert not any(r in REVERSED for step in relations[:3] for r in step), relations[:3]
    assert any(r in REVERSED for step in relations[3:] for r in step)   # 48 draws of a balanced pool


@pytest.mark.parametrize("args, words", [(["--shapes-captions", "3"], ["--shapes-captions", "--dataset shapes"]),
                                         (["--shapes-forward-steps", "9"], ["--shapes-forward-steps", "--dataset shapes"]),
                                         (["--dataset", "shapes", "--shapes-pairs", "1.5"], ["shapes-pairs", "[0, 1]"]),
                                         (["--shapes-vocabulary", "wide"], ["--shapes-vocabulary", "--dataset shapes"]),
                                         (["--dataset", "shapes", "--shapes-reversed", "-0.1"], ["shapes-reversed", "[0, 1]"]),
                                         (["--dataset", "shapes", "--shapes-pairs", "1", "--shapes-reversed", "1",
                                           "--shapes-forward-steps", "9"], ["no scene to draw", "--shapes-reversed"])])
def test_shapes_options_misused_are_one_line(tmp_path, capsys, args, words):
    from ddpmkit.cli import main
    code = main(["train", "--out", str(tmp_path / "r"), "--steps", "1", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "\n" not in err and all(w in err for w in words), err
    assert not (tmp_path / "r").exists()


def test_an_unknown_shapes_vocabulary_is_refused_in_python_and_not_offered_by_the_cli():
    from ddpmkit.cli import train
    from ddpmkit.config import TrainConfig
    from ddpmkit.errors import UserError
    from ddpmkit.shapes.captions import VOCABULARIES
    with pytest.raises(UserError, match="unknown shapes vocabulary 'huge': choose base or wide"):
        TrainConfig(dataset="shapes", shapes_vocabulary="huge").validate()
    option = next(p for p in train.params if p.name == "shapes_vocabulary")
    assert list(option.type.choices) == list(VOCABULARIES)
