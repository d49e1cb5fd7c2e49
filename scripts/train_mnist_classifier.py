"""Train the MNIST digit classifier shipped in ``ddpmkit/weights`` (domain FID features, prompt accuracy).

Trains on the first 9,000 embedded digits with small random shifts, then measures accuracy once on the 1,000 held-out
digits (never used for any choice during training) and writes ``mnist_classifier.safetensors`` + ``mnist_classifier.json``
(config, held-out accuracy, command, wall time, versions).

    python scripts/train_mnist_classifier.py            # defaults: 24 epochs, 1 CPU thread, seed 0
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ddpmkit.metrics.classifier import ClassifierConfig, MNISTClassifier, shipped_weights_path
from ddpmkit.metrics.data import embedded_mnist


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by an integer offset in [-max_shift, max_shift]² and fill with background (-1)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    off = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    rows = (off[:, 0, None] + torch.arange(h))[:, :, None].expand(n, h, w)
    cols = (off[:, 1, None] + torch.arange(w))[:, None, :].expand(n, h, w)
    idx = torch.arange(n)[:, None, None]
    return padded[idx, 0, rows, cols].unsqueeze(1)


@torch.no_grad()
def accuracy(model: MNISTClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model.predict(xb) for xb in x.split(1000)])
    return (pred == y).double().mean().item()


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--channels", type=int, nargs="+", default=list(ClassifierConfig.channels))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--max-shift", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=shipped_weights_path(), help="the .safetensors path (JSON beside it)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)                    # init and dropout
    gen = torch.Generator().manual_seed(args.seed)  # shuffling and shifts
    x_train, y_train = embedded_mnist("train")
    x_test, y_test = embedded_mnist("test")

    config = ClassifierConfig(channels=tuple(args.channels))
    model = MNISTClassifier(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for idx in perm.split(args.batch_size):
            xb = random_shift(x_train[idx], args.max_shift, gen)
            loss = F.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}  loss {total / len(x_train):.4f}  "
              f"{time.perf_counter() - start:.0f}s", flush=True)
    wall = time.perf_counter() - start

    train_acc = accuracy(model, x_train, y_train)
    test_acc = accuracy(model, x_test, y_test)
    print(f"train accuracy {train_acc:.4f}  held-out accuracy {test_acc:.4f}  ({wall:.0f}s)")

    meta = {
        "config": config.to_dict(),
        "feature": "global-average-pooled last conv stage (penultimate layer)",
        "input": "[N, 1, 28, 28] float in [-1, 1]",
        "data": "embedded MNIST: first 9,000 train, last 1,000 held out",
        "heldout_accuracy": round(test_acc, 4),
        "heldout_n": len(y_test),
        "train_accuracy": round(train_acc, 4),
        "parameters": sum(p.numel() for p in model.parameters()),
        "hyperparameters": {k: v for k, v in vars(args).items() if k != "out"},
        "command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "wall_time_s": round(wall, 1),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}, {args.threads} CPU thread(s)",
        "torch": torch.__version__,
        "commit": git_commit(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".safetensors.tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, args.out)
    os.chmod(args.out, 0o644)
    meta_path = args.out.with_suffix(".json")
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, meta_path)
    print(f"wrote {args.out} and {meta_path}")


if __name__ == "__main__":
    main()
