"""Benchmark of text-to-image MNIST: train (or reuse) a run, then prompt accuracy against guidance scale, per digit,
on held-out paraphrases, and a picture grid (prompts × seeds).

    python benchmarks/text_to_image.py --train            # train runs/mnist-text first (the README's main command)
    python benchmarks/text_to_image.py --run runs/mnist-text --n-per-digit 50
    python benchmarks/text_to_image.py --ship              # also copy the run into the package as the default model

Results go to benchmarks/results/text_to_image.json; the grid to docs/text_grid.png.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import report  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
SCALES = (0.0, 1.0, 2.0, 3.0, 5.0)


def main() -> None:
    from ddpmkit.evaluate import prompt_accuracy
    from ddpmkit.pipeline import DEFAULT_GUIDANCE, Pipeline
    from ddpmkit.viz import make_grid, save_png, to_pil

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/mnist-text")
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--ship", action="store_true")
    ap.add_argument("--n-per-digit", type=int, default=50)
    ap.add_argument("--scales", type=float, nargs="*", default=list(SCALES))
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="extra arguments for ddpmkit train")
    args = ap.parse_args()
    result: dict = {}
    commit = report.commit()
    if args.train:
        cmd = ["ddpmkit", "train", "--text-encoder", "all-MiniLM-L6-v2", "--out", args.run, "--overwrite",
               "--no-progress", *args.extra]
        result["train"] = report.timed_train(cmd)
    pipe = Pipeline.load(ROOT / args.run)
    sampler, steps = pipe.resolve_sampler(None, None)
    result["sampler"] = {"name": sampler, "steps": steps, "n_per_digit": args.n_per_digit}
    rows = []
    for w in args.scales:
        t0 = time.time()
        r = prompt_accuracy(pipe, n_per_digit=args.n_per_digit, guidance=w)
        rows.append({"guidance": w, "accuracy": r["accuracy"], "min_digit": min(r["per_digit"]),
                     "per_digit": r["per_digit"], "seconds": round(time.time() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    result["accuracy_vs_guidance"] = rows
    held = prompt_accuracy(pipe, n_per_digit=args.n_per_digit, guidance=DEFAULT_GUIDANCE, held_out=True)
    result["held_out_paraphrases"] = {"guidance": DEFAULT_GUIDANCE, "accuracy": held["accuracy"],
                                      "per_digit": held["per_digit"]}
    print(json.dumps(result["held_out_paraphrases"]), flush=True)
    # picture grid: one row per prompt, 8 seeds
    prompts = ["a handwritten 0", "the digit one", "a picture of the number 2", "a handwritten three",
               "the digit 4", "a handwritten five", "the number six", "a handwritten 7", "the digit eight",
               "a handwritten nine"]
    tiles = []
    for p in prompts:
        tiles += to_pil(pipe.generate(p, n=8, seed=0))
    (ROOT / "docs").mkdir(exist_ok=True)
    save_png(make_grid(tiles, nrow=8, scale=2), ROOT / "docs" / "text_grid.png")
    result["grid"] = {"file": "docs/text_grid.png", "prompts": prompts, "seeds": "generate(p, n=8, seed=0)"}
    result["commit"] = commit
    result["date"] = time.strftime("%Y-%m-%d")
    out = ROOT / "benchmarks" / "results" / "text_to_image.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else {}
    if "train" not in result and "train" in old:
        result["train"] = old["train"]
    out.write_text(json.dumps(result, indent=2) + "\n")
    if args.ship:
        ship = ROOT / "src" / "ddpmkit" / "weights" / "mnist-text"
        ship.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / args.run / "config.json", ship / "config.json")
        shutil.copy(ROOT / args.run / "ema.safetensors", ship / "ema.safetensors")
        (ship / "provenance.json").write_text(json.dumps({**result.get("train", {}), "results": str(out.name)},
                                                         indent=2) + "\n")


if __name__ == "__main__":
    main()
