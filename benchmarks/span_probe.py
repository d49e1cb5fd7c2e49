"""Does a trained shapes model read an unseen word once it sees the word only through the training captions' span?

A U-Net reads the frozen token states through learned linear maps (keys and values of every cross-attention). Those
maps start random and are trained only on the states of the training captions, so their response to the directions
those states never take is whatever initialisation left there. An unseen word ("puny") has part of its state in such
directions, and that part reaches the picture as noise the model never learned to ignore. This probe rebuilds a
finished run's text input so that every token state is replaced by its projection on the top-k principal directions
of the training captions' (LayerNorm'd) states, for keys and values alike (optionally the pooled vector too), and
scores the run as ``shapes_held_out.py`` does. No weight changes: if size or relation words of a spent held-out set
are read better after the projection, the random-direction response is what hid them.

    python benchmarks/span_probe.py runs/shapes-words6 --ranks 0 128 256 --wordings held_out_8 \
        --out benchmarks/results/span_probe.jsonl

Measured in session 20 (README seed 0, set 8; results/span_probe.jsonl): set-8 size 38.1% unprojected, 35.4% and
36.7% at ranks 128 and 256 ("puny" 7-10%, "compact" 0%): the projection does not make unseen size words read.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from report import commit
from shapes_seeds import WORDINGS, score


class SpanNorm(nn.Module):
    """The U-Net's context LayerNorm, with the normalised states projected on a fixed basis around a fixed mean."""

    def __init__(self, norm: nn.LayerNorm, mean: torch.Tensor, basis: torch.Tensor):
        super().__init__()
        self.norm, self.mean, self.basis = norm, mean, basis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ddpmkit.nn.unet import projected_norm
        return projected_norm(x, self.norm, self.mean, self.basis)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path, help="a shapes text run (cross-attention, no text layers or positions)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[0, 64, 256], help="0: the run as trained")
    ap.add_argument("--pooled", action="store_true", help="project the pooled vector on its own span too")
    ap.add_argument("--wordings", nargs="+", choices=list(WORDINGS), default=["held_out_8"])
    ap.add_argument("--scenes", type=int, default=4000, help="training scenes whose captions fit the basis")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from ddpmkit.data import load_dataset
    from ddpmkit.nn.unet import principal_directions
    from ddpmkit.pipeline import Pipeline

    pipe = Pipeline.load(args.run)
    tc, net = pipe.config.train, pipe.model
    data = load_dataset(tc.dataset, tc.data_root, tc.image_size, tc.channels, shapes_captions=tc.shapes_captions,
                        shapes_pairs=tc.shapes_pairs, shapes_reversed=tc.shapes_reversed,
                        shapes_vocabulary=tc.shapes_vocabulary)
    captions = sorted({c for i in range(args.scenes) for c in data.captions[i]})
    cond = pipe.encoder(captions)
    mean, vectors, variances = (x.float() for x in principal_directions(cond.tokens[cond.mask]))
    p_mean, p_vectors, _ = (x.float() for x in principal_directions(cond.pooled))
    energy = (variances.cumsum(0) / variances.sum()).tolist()
    original_norm, original_pooled = net.context_norm, net.pooled_proj[0]
    scorer = commit()
    for k in args.ranks:
        net.context_norm = SpanNorm(original_norm, mean, vectors[:, :k]) if k else original_norm
        if args.pooled and k:
            net.pooled_proj[0] = SpanNorm(original_pooled, p_mean, p_vectors[:, :min(k, p_vectors.shape[1])])
        else:
            net.pooled_proj[0] = original_pooled
        t0 = time.time()
        row = {"run": str(args.run), "rank": k, "pooled": bool(args.pooled and k), "captions": len(captions),
               "energy": round(energy[k - 1], 5) if k else 1.0, "n": args.n, "scored_at_commit": scorer}
        for key in args.wordings:
            row[key] = score(pipe, args.n, WORDINGS[key])
        row["score_s"] = round(time.time() - t0, 1)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(k, row["energy"], {w: {a: round(row[w][a], 3) for a in ("color", "shape", "position", "relation", "size")}
                                 for w in args.wordings},
              {w: row[w]["per_size_wording"] for w in args.wordings}, flush=True)


if __name__ == "__main__":
    main()
