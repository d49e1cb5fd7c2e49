"""Short ablations of the text-to-image recipe on the embedded MNIST: train a few hundred steps with one change to
the U-Net or the recipe, then prompt accuracy (DPM-Solver++ 2M, 25 steps) at w = 1 and w = 3.

    python benchmarks/text_recipe_ablation.py --tag base --steps 800
    python benchmarks/text_recipe_ablation.py --tag g8-ss --steps 800 --groups 8 --scale-shift

Each row is appended to benchmarks/results/text_recipe_ablation.jsonl (run them one at a time: they time).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from ddpmkit.config import DiffusionConfig, RunConfig, TrainConfig
    from ddpmkit.evaluate import prompt_accuracy
    from ddpmkit.nn import unet
    from ddpmkit.pipeline import Pipeline
    from ddpmkit.train import Trainer

    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--preset", default="mnist-tiny")
    ap.add_argument("--groups", type=int, default=None)
    ap.add_argument("--scale-shift", action="store_true")
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--prediction", default="eps")
    ap.add_argument("--ema-decay", type=float, default=0.9999)
    ap.add_argument("--snr-gamma", type=float, default=None)
    ap.add_argument("--n-per-digit", type=int, default=20)
    ap.add_argument("--scales", type=float, nargs="*", default=[1.0, 3.0])
    args = ap.parse_args()

    base = unet.PRESETS[args.preset].to_dict()
    if args.groups:
        base["groups"] = args.groups
    base["scale_shift"] = args.scale_shift
    unet.PRESETS["ablation"] = unet.UNetConfig.from_dict(base)
    tc = TrainConfig(preset="ablation", steps=args.steps, text_encoder="all-MiniLM-L6-v2",
                     caption_dropout=args.caption_dropout, lr=args.lr, batch_size=args.batch_size,
                     ema_decay=args.ema_decay, snr_gamma=args.snr_gamma, sample_every=10**9, save_every=10**9)
    cfg = RunConfig(diffusion=DiffusionConfig(prediction=args.prediction), train=tc)
    run = Path("/tmp/ablation") / args.tag
    t0 = time.time()
    Trainer(run, cfg, overwrite=True, progress=False).train()
    train_s = time.time() - t0
    pipe = Pipeline.load(run)
    row = {"tag": args.tag, "args": vars(args), "train_s": round(train_s, 1)}
    for w in args.scales:
        r = prompt_accuracy(pipe, n_per_digit=args.n_per_digit, guidance=w, steps=25)
        row[f"acc_w{w:g}"] = round(r["accuracy"], 3)
        row[f"min_w{w:g}"] = round(min(r["per_digit"]), 3)
    row["eval_s"] = round(time.time() - t0 - train_s, 1)
    print(json.dumps(row), flush=True)
    out = ROOT / "benchmarks" / "results" / "text_recipe_ablation.jsonl"
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
