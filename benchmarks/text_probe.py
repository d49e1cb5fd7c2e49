"""Which layer of the frozen text encoder says where each shape goes? Linear probes on its hidden states.

For a two-shape caption ("a red circle left of a blue square") the U-Net must put each shape on one side; the side of
a shape is "named first" XOR "the relation points the other way", so it is not in any single word. This script embeds
pair captions of shapes scenes with the encoder, takes the hidden state of each shape word at every layer, and fits a
logistic regression that predicts the shape's side (left/top vs right/bottom). Probes are fitted on one half of the
scenes and scored on the other half, per caption family (training templates TRAIN, training paraphrases PARAPHRASE,
and the evaluation-only HELD_OUT wordings), for two training sets: TRAIN only, and TRAIN + PARAPHRASE.

    python benchmarks/text_probe.py            # ~2 minutes on 2 cores; writes benchmarks/results/text_probe.json

Needs scikit-learn (pip install -e '.[bench]').
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

import report  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
LOW_SIDE = {"left of": True, "above": True, "right of": False, "below": False}   # the first-named shape's side
FAMILIES = ("train", "paraphrase", "held_out")


def all_layers(encoder, text: str):
    """Hidden states [layers+1, T, D] of one text at every layer of the encoder (0: embeddings), its tokens, and each
    token's character span in ``text``."""
    tok = encoder._backend.tokenizer
    batch = tok([text], return_tensors="pt", return_offsets_mapping=True)
    spans = batch.pop("offset_mapping")[0].tolist()
    with torch.inference_mode():
        hidden = encoder._backend.model[0].auto_model(**batch, output_hidden_states=True).hidden_states
    return torch.stack(hidden)[:, 0], tok.convert_ids_to_tokens(batch["input_ids"][0]), spans


def save(script: str, what: str, scenes: dict, rows: list[dict]) -> None:
    """Write a probe's rows, with the commit and command, to benchmarks/results/SCRIPT.json."""
    command = " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])   # as it was run
    out = {"what": what, "scenes": scenes, "rows": rows, "commit": report.commit(), "command": command}
    path = ROOT / "benchmarks" / "results" / f"{script}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


def shape_states(encoder, labels: list[dict], family: str, seed: int):
    """Hidden states [N, layers+1, D] of each shape word, its side (1: left/top), and the caption's relation phrase."""
    from ddpmkit.shapes.captions import _REL_RE, caption
    rng = np.random.default_rng(seed)
    states, side, phrase = [], [], []
    for lab in labels:
        text = caption(lab, rng, held_out=family == "held_out", paraphrase=family == "paraphrase")
        hidden, words, _ = all_layers(encoder, text)
        shapes = [o["shape"] for o in lab["objects"]]
        for k, name in enumerate(shapes):
            where = [i for i, w in enumerate(words) if w == name]
            if len(where) != shapes.count(name):     # a shape word split into pieces: skip this caption's shape
                continue
            states.append(hidden[:, where[k if shapes[0] == shapes[1] else 0]].numpy())
            side.append(int((k == 0) == LOW_SIDE[lab["relation"]]))
            phrase.append(_REL_RE.search(" ".join(text.lower().split())).group(1))
    return np.stack(states), np.array(side), np.array(phrase)


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    from ddpmkit.shapes import ShapesDataset
    from ddpmkit.text import TextEncoder
    encoder = TextEncoder()
    data = ShapesDataset(seed=3, image_format="uint8", p_pair=1.0)
    pairs = [lab for lab in (data[i][2] for i in range(1200)) if lab.get("relation")]
    fit_scenes, test_scenes = pairs[: len(pairs) // 2], pairs[len(pairs) // 2:]
    fit = {f: shape_states(encoder, fit_scenes, f, seed) for f, seed in zip(FAMILIES, (0, 1, 2))}
    test = {f: shape_states(encoder, test_scenes, f, seed) for f, seed in zip(FAMILIES, (5, 6, 7))}
    layers = fit["train"][0].shape[1]
    rows = []
    for trained_on in (("train",), ("train", "paraphrase")):
        for layer in range(layers):
            x = np.concatenate([fit[f][0][:, layer] for f in trained_on])
            y = np.concatenate([fit[f][1] for f in trained_on])
            probe = LogisticRegression(max_iter=3000).fit(x, y)
            acc = {f: round(float(probe.score(test[f][0][:, layer], test[f][1])), 3) for f in FAMILIES}
            hx, hy, hp = test["held_out"]
            right = probe.predict(hx[:, layer]) == hy
            per_phrase = {p: round(float(right[hp == p].mean()), 3) for p in sorted(set(hp))}
            rows.append({"probe_fitted_on": "+".join(trained_on), "layer": layer, "side_accuracy": acc,
                         "held_out_per_relation_phrase": per_phrase})
            print(f"{'+'.join(trained_on):17s} layer {layer}: " +
                  "  ".join(f"{f} {a:.3f}" for f, a in acc.items()), flush=True)
    save("text_probe", "linear-probe accuracy of a shape's side from its word's hidden state in all-MiniLM-L6-v2 "
                       "(0 = embeddings, 6 = the output the encoder gives by default); scenes split half/half",
         {"fit": len(fit_scenes), "test": len(test_scenes)}, rows)


if __name__ == "__main__":
    main()
