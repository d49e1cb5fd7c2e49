"""Throughput and memory, ddpmkit vs diffusers vs denoising-diffusion-pytorch, networks matched to ±2 % parameters.

(a) training images/s (ε-MSE, Adam) in fp32 and bf16 autocast; (b) sampling images/s per network evaluation;
both with repetitions interleaved across toolkits in one process (the order rotates each repetition) and medians.
(d) peak RSS of a training step, each toolkit in a fresh subprocess so one toolkit's memory never counts for another.

    python benchmarks/throughput.py            # full run (writes benchmarks/results/peers.json, benchmarks/RESULTS.md)
    python benchmarks/throughput.py --quick    # smoke run, seconds (writes runs/benchmarks-quick/)
    python benchmarks/throughput.py --device cuda --tiny-batch 256 --cifar-batch 128   # one GPU: sections "…, GPU"

On a GPU, (d) is the peak of torch's CUDA allocator over a training step (all toolkits in one process; the allocator
keeps per-process statistics, reset between toolkits) instead of RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")      # denoising-diffusion-pytorch's sampler draws progress bars
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import peers  # noqa: E402
import report  # noqa: E402

FULL = dict(tiny_batch=64, cifar_batch=8, reps=5, steps=10, warmup=2, sample_steps=10, threads=0)
QUICK = dict(tiny_batch=4, cifar_batch=1, reps=2, steps=2, warmup=1, sample_steps=2, threads=1)
TARGET = {"diffusers": 1.3, "ddp": 2.0}   # issue 4: ddpmkit ≥ 1.3× diffusers and ≥ 2× denoising-diffusion-pytorch


def batches(setting: str, batch: int, n: int, seed: int = 0, device: str = "cpu") -> list:
    """n (x0, t, noise) triples shared by every toolkit: MNIST digits for mnist-*, random images otherwise; drawn on
    the CPU and moved to ``device`` once (data loading is not what is timed)."""
    g = torch.Generator().manual_seed(seed)
    s = peers.SETTINGS[setting]
    shape = (batch, s["channels"], s["size"], s["size"])
    data = None
    if s["channels"] == 1:
        from ddpmkit.data import load_dataset
        data = load_dataset("mnist")
    out = []
    for _ in range(n):
        if data is not None:
            x0 = data.batch(torch.randint(len(data), (batch,), generator=g))
        else:
            x0 = torch.rand(shape, generator=g) * 2 - 1
        out.append(tuple(v.to(device) for v in
                         (x0, torch.randint(0, peers.T, (batch,), generator=g), torch.randn(shape, generator=g))))
    return out


def sync(device: str) -> None:
    """Wait for queued GPU work, so a timer read after it counts all of it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_training(setting, batch, toolkits, precisions, reps, steps, warmup, device="cpu") -> dict:
    nets = {tk: peers.build(tk, setting) for tk in toolkits}
    fns = {(tk, p): peers.train_step_fn(tk, nets[tk], setting, p, device=device) for tk in toolkits
           for p in precisions}
    data = batches(setting, batch, steps + warmup, device=device)
    res = {(tk, p): [] for tk in toolkits for p in precisions}
    for r in range(reps):
        order = toolkits[r % len(toolkits):] + toolkits[:r % len(toolkits)]
        for p in precisions:
            for tk in order:
                for b in data[:warmup]:
                    fns[tk, p](*b)
                sync(device)
                t0 = time.perf_counter()
                for b in data[warmup:]:
                    fns[tk, p](*b)
                sync(device)
                res[tk, p].append(batch * steps / (time.perf_counter() - t0))
    return res


def time_sampling(setting, batch, toolkits, precisions, reps, steps, device="cpu") -> dict:
    runs = {(tk, p): peers.sample_fn(tk, peers.build(tk, setting), setting, p, device=device) for tk in toolkits
            for p in precisions}
    res = {k: [] for k in runs}
    for r in range(reps):
        order = toolkits[r % len(toolkits):] + toolkits[:r % len(toolkits)]
        for p in precisions:
            for tk in order:
                runs[tk, p](batch, 2)                   # warm-up
                sync(device)
                t0 = time.perf_counter()
                runs[tk, p](batch, steps)
                sync(device)
                res[tk, p].append(batch * steps / (time.perf_counter() - t0))
    return res


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
    except (OSError, StopIteration):
        return None


def rss_worker(args) -> None:
    """Runs in a fresh process. Linux: resets the RSS high-water mark after imports and data (clear_refs 5), so the
    peak is the training step's own; elsewhere the process's lifetime ru_maxrss."""
    torch.set_num_threads(args.threads or torch.get_num_threads())
    peers.preload(args.rss_worker)
    data = batches(args.setting, args.batch, 3)
    before = _proc_status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        source = "VmHWM after reset"
    except OSError:
        source = "ru_maxrss (lifetime)"
    net = peers.build(args.rss_worker, args.setting)
    step = peers.train_step_fn(args.rss_worker, net, args.setting, args.precision)
    for b in data:
        step(*b)
    peak = _proc_status_kib("VmHWM") if source.startswith("VmHWM") else None
    peak = peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss                # KiB on Linux
    print(json.dumps({"before_mib": (before or 0) / 1024, "peak_mib": peak / 1024, "source": source}))


def measure_rss(setting, batch, toolkits, precisions, threads) -> dict:
    out = {}
    for p in precisions:
        for tk in toolkits:
            cmd = [sys.executable, __file__, "--rss-worker", tk, "--setting", setting, "--batch", str(batch),
                   "--precision", p] + (["--threads", str(threads)] if threads else [])
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"RSS worker for {tk} failed:\n{r.stderr[-2000:]}")
            out[tk, p] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def measure_gpu_memory(setting, batch, toolkits, precisions, device) -> dict:
    """Peak CUDA allocator memory of 3 training steps (network, Adam state, activations), per toolkit, in MiB."""
    data = batches(setting, batch, 3, device=device)
    out = {}
    for p in precisions:
        for tk in toolkits:
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step = peers.train_step_fn(tk, peers.build(tk, setting), setting, p, device=device)
            for b in data:
                step(*b)
            sync(device)
            out[tk, p] = {"before_mib": before / 2 ** 20, "peak_mib": torch.cuda.max_memory_allocated() / 2 ** 20,
                          "source": "torch.cuda.max_memory_allocated"}
            del step
    return out


def ratio_rows(label, res, toolkits, precisions) -> list:
    """One row per precision: medians, ddpmkit ÷ peer, and whether the issue's targets hold."""
    rows = []
    for p in precisions:
        med = {tk: statistics.median(res[tk, p]) for tk in toolkits}
        ratios = {peer: med["ddpmkit"] / med[peer] for peer in TARGET if peer in med}
        met = "—" if len(ratios) < len(TARGET) else ("yes" if all(ratios[k] >= TARGET[k] for k in TARGET) else "no")
        rows.append([f"{label}, {p}", *(med.get(tk) for tk in peers.TOOLKITS), *(ratios.get(k) for k in TARGET), met])
    return rows


GPU_NOTE = ("On one GPU, run by benchmarks/gpu_check.sh where a GPU is lent (device time is scarce, hence few "
            "repetitions). At these sizes every toolkit is bound by kernel launches and small kernels (GroupNorm, "
            "element-wise ops) rather than arithmetic: bf16 autocast is no faster than fp32 and all three land within "
            "a few percent of each other, inside the run-to-run spread.")


def section(columns, rows, notes, data, gpu: bool = False) -> dict:
    """One results section; a GPU run (--device cuda, not merely a machine that has a GPU) gets the GPU note."""
    return {"columns": columns, "rows": rows, "notes": notes + [GPU_NOTE] if gpu else notes, "data": data,
            "machine": peers.machine(),
            "versions": peers.versions(), "command": report.command_line()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny batches, 2 steps, 1 thread")
    ap.add_argument("--only", choices=["train", "sample", "rss"], nargs="+", default=["train", "sample", "rss"])
    ap.add_argument("--toolkits", nargs="+", choices=peers.TOOLKITS, default=list(peers.TOOLKITS))
    ap.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    ap.add_argument("--tiny-batch", type=int, help="mnist-tiny batch [64, ddpmkit's default recipe; quick 4]")
    ap.add_argument("--cifar-batch", type=int, help="ddpm-cifar10 (35.7M) batch [8; quick 1]; 0 skips it")
    ap.add_argument("--reps", type=int, help="interleaved repetitions [5; quick 2]")
    ap.add_argument("--steps", type=int, help="timed training steps per repetition [10; quick 2]")
    ap.add_argument("--warmup", type=int, help="untimed steps before each timed block [2; quick 1]")
    ap.add_argument("--sample-steps", type=int, help="network evaluations per timed sampling run [10; quick 2]")
    ap.add_argument("--threads", type=int, help="torch threads [0: torch's default; quick 1]")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: GPU results go to their own sections")
    # internal: one RSS measurement in a fresh process
    ap.add_argument("--rss-worker", choices=peers.TOOLKITS, help=argparse.SUPPRESS)
    ap.add_argument("--setting", default="mnist-tiny", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_worker:
        return rss_worker(args)
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.device(args.device).type == "cuda"
    if gpu and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA GPU here; run on the CPU (the default)")
    where = ", GPU" if gpu else ""
    key = (lambda k: k + "_cuda") if gpu else (lambda k: k)
    toolkits = peers.available(args.toolkits)
    if "ddpmkit" not in toolkits:
        sys.exit("ddpmkit must be among --toolkits: every figure is a ratio to it")
    settings = [("mnist-tiny", args.tiny_batch)] + ([("ddpm-cifar10", args.cifar_batch)] if args.cifar_batch else [])
    params = peers.matched_counts([s for s, _ in settings], toolkits)   # raises outside ±2 %
    param_note = "Parameters: " + "; ".join(f"{s}: " + ", ".join(f"{peers.NAMES[tk]} {n:,}" for tk, n in row.items())
                                             for s, row in params.items())
    head = ["Figure", *(peers.NAMES[tk] for tk in peers.TOOLKITS), "ddpmkit ÷ diffusers",
            "ddpmkit ÷ denoising-diffusion-pytorch"]
    t_start = time.time()

    if "train" in args.only:
        rows, data = [], {}
        for s, b in settings:
            res = time_training(s, b, toolkits, args.precisions, args.reps, args.steps, args.warmup, args.device)
            rows += ratio_rows(f"train images/s{where}, {s}, batch {b}", res, toolkits, args.precisions)
            data[s] = {"batch": b, "images_per_s": {f"{tk}/{p}": v for (tk, p), v in res.items()}}
            print(f"training {s}: " + json.dumps(data[s]["images_per_s"]), flush=True)
        notes = [param_note, f"{args.reps} repetitions × {args.steps} timed steps (after {args.warmup} warm-up) per "
                 "toolkit and precision, interleaved, order rotating; median images/s. One step: forward noising, "
                 "ε-MSE, backward, Adam (no clipping, no EMA) through each toolkit's own loss code.",
                 "Target: ddpmkit ≥ 1.3× diffusers and ≥ 2× denoising-diffusion-pytorch."]
        report.update(key("training_throughput"), section(head + ["Target met"], rows, notes, data, gpu), args.quick)

    if "sample" in args.only:
        rows, data = [], {}
        for s, b in settings:
            res = time_sampling(s, b, toolkits, args.precisions, args.reps, args.sample_steps, args.device)
            rows += ratio_rows(f"sampling images/s per network evaluation{where}, {s}, batch {b}", res, toolkits,
                               args.precisions)
            data[s] = {"batch": b, "images_per_s_per_nfe": {f"{tk}/{p}": v for (tk, p), v in res.items()}}
            print(f"sampling {s}: " + json.dumps(data[s]["images_per_s_per_nfe"]), flush=True)
        notes = [param_note, f"batch × {args.sample_steps} network evaluations / wall time, each toolkit's own loop: "
                 "ddpmkit `samplers.sample(..., 'ddpm')`, diffusers `DDPMScheduler.step`, denoising-diffusion-pytorch "
                 "`GaussianDiffusion.sample` (DDIM, its respaced path); inference mode, median of "
                 f"{args.reps} interleaved repetitions.",
                 "Target met: the training targets (1.3×, 2×) applied here too."]
        report.update(key("sampling_throughput"), section(head + ["Target met"], rows, notes, data, gpu), args.quick)

    if "rss" in args.only:
        rows, data = [], {}
        for s, b in settings:
            res = (measure_gpu_memory(s, b, toolkits, args.precisions, args.device) if gpu
                   else measure_rss(s, b, toolkits, args.precisions, args.threads))
            memory = "peak GPU memory" if gpu else "peak RSS"
            for p in args.precisions:
                peak = {tk: res[tk, p]["peak_mib"] for tk in toolkits}
                growth = {tk: res[tk, p]["peak_mib"] - res[tk, p]["before_mib"] for tk in toolkits}
                for label, vals in ((f"{memory} MiB", peak), (f"{memory} − before the network, MiB", growth)):
                    rows.append([f"{label}, {s}, batch {b}, {p}", *(vals.get(tk) for tk in peers.TOOLKITS),
                                 *(vals[k] / vals["ddpmkit"] if k in vals and vals["ddpmkit"] > 0 else None
                                   for k in ("diffusers", "ddp"))])
            data[s] = {"batch": b, **{f"{tk}/{p}": v for (tk, p), v in res.items()}}
        notes = [param_note, ("One process; per toolkit the CUDA allocator's peak is reset after the data is on the "
                              "GPU, then network, Adam and 3 training steps; peak = torch.cuda.max_memory_allocated. "
                              if gpu else
                              "Each toolkit in a fresh subprocess: imports and data, then the RSS high-water mark is "
                              "reset (Linux /proc/self/clear_refs), then network, Adam and 3 training steps; peak = "
                              "VmHWM. 'Before the network' is VmRSS after imports and data. ") +
                 "Ratio columns here are peer ÷ ddpmkit (above 1: ddpmkit uses less)."]
        cols = ["Figure", *(peers.NAMES[tk] for tk in peers.TOOLKITS), "diffusers ÷ ddpmkit",
                "denoising-diffusion-pytorch ÷ ddpmkit"]
        report.update(key("peak_rss"), section(cols, rows, notes, data, gpu), args.quick)
    print(f"done in {time.time() - t_start:.0f} s; results: {report.paths(args.quick)[1]}")


if __name__ == "__main__":
    main()
