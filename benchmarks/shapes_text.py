"""Benchmark of text-to-image on the procedural shapes scenes: train (or reuse) a run, then prompt accuracy judged
by the shapes detector against guidance scale, per attribute, on held-out paraphrases, and a picture grid
(prompts × seeds).

    python benchmarks/shapes_text.py --train --run runs/shapes-sepfwd36 --extra --steps 2300 --text-encoder-layer 3,6 \\
        --shapes-captions 3 --shapes-pairs 0.6 --cross-attention separate --shapes-forward-steps 1000   # README
    python benchmarks/shapes_text.py --run runs/shapes-text --n 300
    python benchmarks/shapes_text.py --train --n 4 --scales 1 --results /tmp/s.json --grid /tmp/s.png \\
        --extra --steps 2 --preset micro                  # smoke test of the script itself (--extra must come last)

Scenes are the held-out stream (seed 1; training renders seed 0), captioned in the training phrasings, one image per
caption; attribute definitions are in ``ddpmkit.shapes.evaluate.shapes_prompt_accuracy``.
Results go to benchmarks/results/shapes_text.json; the grid to docs/shapes_grid.png.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import report  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
SCALES = (0.0, 1.0, 2.0, 3.0, 5.0)   # the table: unconditional, conditional, guided
GRID_PROMPTS = ["a red circle on the left", "a small blue square at the top", "a large yellow triangle in the centre",
                "a green circle at the bottom", "a purple square on the right", "a red circle left of a blue square",
                "a yellow triangle above a green circle", "a cyan square below a purple triangle"]


def main() -> None:
    from ddpmkit.evaluate import shapes_prompt_accuracy
    from ddpmkit.pipeline import DEFAULT_GUIDANCE, Pipeline
    from ddpmkit.viz import make_grid, save_png, to_pil

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/shapes-text")
    ap.add_argument("--train", action="store_true", help="train the run first (replaces it)")
    ap.add_argument("--n", type=int, default=300, help="held-out scenes per guidance scale")
    ap.add_argument("--scales", type=float, nargs="*", default=list(SCALES))
    ap.add_argument("--sampler-steps", type=int, default=None, help="sampler steps [default: the text default]")
    ap.add_argument("--results", default="benchmarks/results/shapes_text.json")
    ap.add_argument("--grid", default="docs/shapes_grid.png")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="extra arguments for ddpmkit train")
    args = ap.parse_args()
    result: dict = {}
    commit = report.commit()
    if args.train:
        cmd = ["ddpmkit", "train", "--dataset", "shapes", "--text-encoder", "all-MiniLM-L6-v2", "--out", args.run,
               "--overwrite", "--no-progress", *args.extra]
        result["train"] = report.timed_train(cmd)
    pipe = Pipeline.load(ROOT / args.run)
    if pipe.config.train.dataset != "shapes":
        raise SystemExit(f"{args.run} was trained on {pipe.config.train.dataset!r}, not shapes")
    sampler, steps = pipe.resolve_sampler(None, args.sampler_steps)
    result["sampler"] = {"name": sampler, "steps": steps, "n": args.n}
    gen = {"steps": args.sampler_steps}
    rows = []
    for w in args.scales:
        t0 = time.time()
        r = shapes_prompt_accuracy(pipe, n=args.n, guidance=w, **gen)
        rows.append({"guidance": w, "accuracy": r["accuracy"], **r["attributes"], "single": r["single"],
                     "pair": r["pair"], "per_color": r["per_color"], "per_shape": r["per_shape"],
                     "per_position": r["per_position"], "per_relation": r["per_relation"], "counts": r["counts"],
                     "seconds": round(time.time() - t0, 1)})
        print(json.dumps({k: v for k, v in rows[-1].items() if not isinstance(v, dict)}), flush=True)
    result["accuracy_vs_guidance"] = rows
    held = shapes_prompt_accuracy(pipe, n=args.n, guidance=DEFAULT_GUIDANCE, held_out=True, **gen)
    result["held_out_paraphrases"] = {"guidance": DEFAULT_GUIDANCE, "accuracy": held["accuracy"],
                                      **held["attributes"], "pair": held["pair"],
                                      "per_relation": held["per_relation"], "counts": held["counts"]}
    print(json.dumps({k: v for k, v in result["held_out_paraphrases"].items() if not isinstance(v, dict)}),
          flush=True)
    # picture grid: one row per prompt, 8 seeds
    tiles = []
    for p in GRID_PROMPTS:
        tiles += to_pil(pipe.generate(p, n=8, seed=0, **gen))
    grid = ROOT / args.grid
    grid.parent.mkdir(parents=True, exist_ok=True)
    save_png(make_grid(tiles, nrow=8, scale=2), grid)
    result["grid"] = {"file": args.grid, "prompts": GRID_PROMPTS, "seeds": "generate(p, n=8, seed=0)",
                      "guidance": DEFAULT_GUIDANCE}
    result["commit"] = commit
    result["date"] = time.strftime("%Y-%m-%d")
    out = ROOT / args.results
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else {}
    if "train" not in result and "train" in old:
        result["train"] = old["train"]
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} and {grid}")


if __name__ == "__main__":
    main()
