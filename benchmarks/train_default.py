"""Benchmark of the README's main command: train the default MNIST model, then measure it.

Records wall time, steps/s, final loss and held-out NLL (bits/dim) to benchmarks/results/train_default.json and
copies the final sample grid to docs/. Run from the repository root:

    python benchmarks/train_default.py [--nll-n 100]
    python benchmarks/train_default.py --out runs/mnist-lsimple --results benchmarks/results/train_lsimple.json \
        --no-docs --extra --snr-gamma 0     # the paper's plain L_simple, for its likelihood
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/mnist")
    ap.add_argument("--nll-n", type=int, default=100)
    ap.add_argument("--results", default="benchmarks/results/train_default.json")
    ap.add_argument("--no-docs", action="store_true", help="leave docs/ (the README's figures) untouched")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="extra arguments for ddpmkit train")
    args = ap.parse_args()
    train_cmd = ["ddpmkit", "train", "--out", args.out, "--overwrite", "--no-progress", *args.extra]
    t0 = time.time()
    subprocess.run(train_cmd, check=True, cwd=ROOT)
    train_wall = time.time() - t0
    run = ROOT / args.out
    with open(run / "logs" / "loss.csv") as f:
        rows = list(csv.DictReader(f))
    last = rows[-50:]
    final_loss = sum(float(r["loss"]) for r in last) / len(last)
    final_mse = sum(float(r["mse"]) for r in last) / len(last)   # plain L_simple (the loss column may be weighted)
    steps = int(rows[-1]["step"])
    loop_s = float(rows[-1]["elapsed_s"])
    t1 = time.time()
    nll = json.loads(subprocess.run(["ddpmkit", "evaluate", args.out, "--metric", "nll", "--n", str(args.nll_n),
                                     "--json"], check=True, cwd=ROOT, capture_output=True, text=True).stdout)
    nll_wall = time.time() - t1
    t2 = time.time()
    docs = run if args.no_docs else ROOT / "docs"
    docs.mkdir(exist_ok=True)
    subprocess.run(["ddpmkit", "sample", args.out, "--n", "64", "--seed", "0", "--out", str(run / "grid.png"),
                    "--denoising-grid", str(docs / "mnist_denoising.png")], check=True, cwd=ROOT)
    sample_wall = time.time() - t2
    if not args.no_docs:
        shutil.copy(run / "grid.png", docs / "mnist_samples.png")
        shutil.copy(run / "logs" / "loss.png", docs / "mnist_loss.png")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    result = {
        "command": " ".join(train_cmd),
        "train_wall_time_s": round(train_wall, 1),
        "train_loop_s": round(loop_s, 1),
        "steps": steps,
        "steps_per_s": round(steps / loop_s, 3),
        "final_loss_mean_last_50_logged": round(final_loss, 5),
        "final_mse_mean_last_50_logged": round(final_mse, 5),
        "nll_bits_per_dim": round(nll["bits_per_dim"], 4),
        "nll_stderr": round(nll["stderr"], 4),
        "nll_n_heldout": nll["n"],
        "nll_wall_time_s": round(nll_wall, 1),
        "sample_64_images_1000_steps_wall_s": round(sample_wall, 1),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(), "python": sys.version.split()[0]},
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
    }
    out = ROOT / args.results
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
