"""Does the channels-last memory layout speed up ddpmkit's training step on this CPU?

oneDNN's convolutions prefer channels-last (NHWC) tensors, and on many CPUs converting a convolutional network to
``torch.channels_last`` is the cheapest speed-up there is. This times ddpmkit's training step (the same step as
``benchmarks/throughput.py`` (a): ε-MSE, backward, Adam) with the network and its batches in the default
(contiguous, NCHW) layout and in channels-last, fp32 and bf16 autocast, repetitions interleaved, medians.

    python benchmarks/memory_format.py          # mnist-tiny, batch 64 (writes benchmarks/results/peers.json)
    python benchmarks/memory_format.py --quick  # smoke run, seconds (writes runs/benchmarks-quick/)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import peers  # noqa: E402
import report  # noqa: E402
import throughput  # noqa: E402

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def time_layouts(setting: str, batch: int, precisions, reps: int, steps: int, warmup: int) -> dict:
    """{(layout, precision): [images/s per repetition]}: one network per (layout, precision), same weights."""
    torch.manual_seed(0)
    base = peers.build("ddpmkit", setting)
    data = throughput.batches(setting, batch, steps + warmup)
    fns, feeds = {}, {}
    for layout, fmt in LAYOUTS.items():
        feeds[layout] = [(x.contiguous(memory_format=fmt), t, n.contiguous(memory_format=fmt)) for x, t, n in data]
        for p in precisions:
            net = peers.build("ddpmkit", setting)
            net.load_state_dict(base.state_dict())
            fns[layout, p] = peers.train_step_fn("ddpmkit", net.to(memory_format=fmt), setting, p)
    res = {k: [] for k in fns}
    for r in range(reps):
        order = list(LAYOUTS) if r % 2 == 0 else list(LAYOUTS)[::-1]
        for p in precisions:
            for layout in order:
                for b in feeds[layout][:warmup]:
                    fns[layout, p](*b)
                t0 = time.perf_counter()
                for b in feeds[layout][warmup:]:
                    fns[layout, p](*b)
                res[layout, p].append(batch * steps / (time.perf_counter() - t0))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: batch 4, 2 steps, 2 repetitions")
    ap.add_argument("--setting", default="mnist-tiny", choices=sorted(peers.SETTINGS))
    args = ap.parse_args()
    batch, reps, steps, warmup = (4, 2, 2, 1) if args.quick else (64, 5, 10, 2)
    precisions = ["fp32", "bf16"]
    res = time_layouts(args.setting, batch, precisions, reps, steps, warmup)
    rows = []
    for p in precisions:
        med = {layout: statistics.median(res[layout, p]) for layout in LAYOUTS}
        rows.append([f"ddpmkit train images/s, {args.setting}, batch {batch}, {p}", med["contiguous"],
                     med["channels_last"], med["channels_last"] / med["contiguous"]])
    notes = [f"{reps} repetitions × {steps} timed steps (after {warmup} warm-up) per layout and precision, "
             "interleaved, order alternating; median images/s. The step is (a)'s: forward noising, ε-MSE, backward, "
             "Adam. channels_last: `net.to(memory_format=torch.channels_last)` and channels-last batches.",
             "A ratio below 1 means channels-last is slower; ddpmkit keeps the default layout."]
    data = {"batch": batch, "images_per_s": {f"{layout}/{p}": v for (layout, p), v in res.items()}}
    columns = ["Figure", "contiguous (NCHW)", "channels_last (NHWC)", "channels_last ÷ contiguous"]
    print(report.update("memory_format", throughput.section(columns, rows, notes, data), args.quick))


if __name__ == "__main__":
    main()
