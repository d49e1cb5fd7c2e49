"""Score finished shapes text runs on the caption wordings of ``shapes_seeds.WORDINGS`` (training phrasings, held-out
sets 1-9), at the default guidance on the same 300 held-out scenes; one JSON line per run.

    python benchmarks/shapes_held_out.py runs/shapes-words6 runs/s14/readme-s1 --wordings held_out_2 held_out_3 \
        --out benchmarks/results/shapes_held_out.jsonl

Held-out sets 2-5 (``ddpmkit.shapes.captions.HELD_OUT_2`` ...) were written after the README recipe
was fixed, so scoring the runs that made the recipe on them is a check the recipe was never tuned against. Each
run's EMA weights are scored as ``shapes_seeds.py`` scores them (the training phrasings reproduce its figures
exactly), so a line here lines up with that run's line there.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from report import commit
from shapes_seeds import WORDINGS, score


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path, help="run folders trained with --dataset shapes and a text encoder")
    ap.add_argument("--wordings", nargs="+", choices=list(WORDINGS), default=list(WORDINGS))
    ap.add_argument("--n", type=int, default=300, help="held-out scenes per score (about half are pairs)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from ddpmkit.pipeline import Pipeline

    scorer = commit()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        pipe = Pipeline.load(run)
        t0 = time.time()
        row = {"run": str(run), "seed": pipe.config.train.seed, "steps": pipe.config.train.steps, "n": args.n,
               "scored_at_commit": scorer}
        for key in args.wordings:
            row[key] = score(pipe, args.n, WORDINGS[key])
        row["score_s"] = round(time.time() - t0, 1)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("run", "seed", "score_s")}),
              {k: {a: round(row[k][a], 3) for a in ("color", "shape", "position", "relation")} for k in args.wordings},
              flush=True)


if __name__ == "__main__":
    main()
