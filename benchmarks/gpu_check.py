"""The GPU check: ddpmkit's command line end to end on one CUDA GPU, compared with the same commands on the CPU.

CI has no GPU, so this is run by hand where one is lent (``benchmarks/gpu_check.sh`` sets the machine up and also
runs ``throughput.py --device cuda``). Every step is a ``python -m ddpmkit`` subprocess, as a user would type it:

1. train the default MNIST recipe for a few hundred steps (Accelerate puts it on the GPU; precision auto = bf16),
   then resume it; the loss must fall and the resumed run must continue the log;
2. sample with every sampler on ``--device cuda`` and on ``--device cpu`` from the same seed: the starting noise
   is drawn on the CPU in both, so the images must agree up to GPU arithmetic (TF32 convolutions);
3. NLL (bits/dim) on cuda and on the CPU from the same seed must agree; domain FID runs on cuda;
4. a text-conditioned shapes run (MiniLM from a local folder, token states from layer 3) trains, samples with
   guidance and a negative prompt, and is scored by the shapes detector on cuda.

    OUT=/tmp/gpu python benchmarks/gpu_check.py --text-encoder PATH    # results: $OUT/gpu_check.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(os.environ.get("OUT") or "runs/gpu-check")
RESULTS: dict = {}
DEVICE = "cuda"    # --device cpu only to try the script itself on a machine without a GPU


def save() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gpu_check.json").write_text(json.dumps(RESULTS, indent=2) + "\n")


def record(name: str, ok: bool, **info) -> None:
    RESULTS[name] = {"ok": bool(ok), **info}
    print(f"[{'ok' if ok else 'FAIL'}] {name}: {json.dumps(info)}", flush=True)
    save()


def ddpmkit(*args: str, timeout: float = 240) -> tuple[int, str, float]:
    """Run ``python -m ddpmkit ARGS``; (exit code, stdout, or on failure the output's tail, seconds)."""
    t0 = time.time()
    try:
        r = subprocess.run([sys.executable, "-m", "ddpmkit", *args], capture_output=True, text=True, timeout=timeout)
        code, text = r.returncode, r.stdout if r.returncode == 0 else (r.stdout + r.stderr)[-1500:]
    except subprocess.TimeoutExpired:
        code, text = 124, f"timed out after {timeout} s"
    if code:
        print(f"$ ddpmkit {' '.join(args)}\n{text}", flush=True)
    return code, text, round(time.time() - t0, 1)


def json_line(text: str) -> dict:
    """The last JSON object printed (``--json``)."""
    return next((json.loads(line) for line in reversed(text.splitlines()) if line.startswith("{")), {})


def loss_rows(run: Path) -> list[dict]:
    with open(run / "logs" / "loss.csv") as f:
        return list(csv.DictReader(f))


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def check_mnist(runs: Path, steps: int) -> Path:
    run = runs / "mnist"
    code, text, s = ddpmkit("train", "--dataset", "mnist", "--steps", str(steps), "--out", str(run), "--overwrite",
                            "--no-progress", "--sample-every", str(steps))
    rows = loss_rows(run) if code == 0 else []
    first = np.mean([float(r["loss"]) for r in rows[:5]]) if rows else None
    last = np.mean([float(r["loss"]) for r in rows[-5:]]) if rows else None
    cfg = json.loads((run / "config.json").read_text()) if code == 0 else {}
    precision = cfg.get("train", {}).get("precision")
    record("train mnist on cuda", code == 0 and last < 0.7 * first, seconds=s, steps=steps, first_loss=first,
           last_loss=last, precision=precision, loop_s=float(rows[-1]["elapsed_s"]) if rows else None,
           tail=text[-300:] if code else "")
    more = steps + max(10, steps // 4)
    code, text, s = ddpmkit("train", "--out", str(run), "--resume", "--steps", str(more), "--no-progress",
                            "--sample-every", str(more))
    rows = loss_rows(run) if code == 0 else []
    record("resume on cuda", code == 0 and int(rows[-1]["step"]) == more, seconds=s,
           last_step=int(rows[-1]["step"]) if rows else None, tail=text[-300:] if code else "")
    return run


def check_samplers(run: Path) -> None:
    for sampler, steps in (("ddpm", 100), ("ddim", 20), ("dpmpp-2m", 20), ("heun", 10), ("euler", 20)):
        grids, secs = {}, {}
        for device in (DEVICE, "cpu"):
            out = OUT / f"mnist_{sampler}_{device}.png" if (sampler, device) == ("ddpm", DEVICE) else \
                Path("/tmp") / f"gpu_check_{sampler}_{device}.png"
            code, text, secs[device] = ddpmkit("sample", str(run), "--n", "16", "--sampler", sampler, "--steps",
                                               str(steps), "--seed", "0", "--device", device, "--out", str(out))
            grids[device] = pixels(out) if code == 0 else None
        if grids[DEVICE] is None or grids["cpu"] is None:
            record(f"sample {sampler} cuda vs cpu", False, seconds=secs)
            continue
        d = np.abs(grids[DEVICE] - grids["cpu"])
        record(f"sample {sampler} cuda vs cpu", d.mean() <= 3.0, steps=steps, mean_abs_diff_levels=float(d.mean()),
               max_abs_diff_levels=int(d.max()), seconds=secs)


def check_learned(runs: Path, steps: int) -> Path:
    """Learned variance with the hybrid loss (Nichol & Dhariwal): its bound terms index the schedule at t - 1."""
    run = runs / "mnist-learned"
    code, text, s = ddpmkit("train", "--dataset", "mnist", "--variance", "learned", "--loss", "hybrid", "--steps",
                            str(steps), "--out", str(run), "--overwrite", "--no-progress", "--sample-every", str(steps))
    record("train learned variance + hybrid loss on cuda", code == 0, seconds=s, tail=text[-300:] if code else "")
    return run


def check_metrics(run: Path, fid: bool = True) -> None:
    bpd = {}
    for device in (DEVICE, "cpu"):
        code, text, s = ddpmkit("evaluate", str(run), "--metric", "nll", "--n", "16", "--batch-size", "16", "--json",
                                "--device", device)
        bpd[device] = json_line(text).get("bits_per_dim") if code == 0 else None
        bpd[device + "_s"] = s
    ok = None not in (bpd[DEVICE], bpd["cpu"]) and abs(bpd[DEVICE] - bpd["cpu"]) < 0.01
    record(f"nll cuda vs cpu ({run.name})", ok, **bpd)
    if not fid:
        return
    code, text, s = ddpmkit("evaluate", str(run), "--metric", "fid", "--n", "500", "--sampler", "ddim", "--steps",
                            "50", "--json", "--device", DEVICE)
    res = json_line(text) if code == 0 else {}
    record("domain fid on cuda", code == 0 and res.get("fid", -1) >= 0, seconds=s, fid=res.get("fid"),
           note="500 samples of a few-hundred-step model: a plumbing check, not a quality figure")


def check_text(runs: Path, encoder: str, steps: int) -> None:
    run = runs / "shapes"
    code, text, s = ddpmkit("train", "--dataset", "shapes", "--text-encoder", encoder, "--text-encoder-layer", "3",
                            "--steps", str(steps), "--out", str(run), "--overwrite", "--no-progress",
                            "--sample-every", str(steps), timeout=400)
    rows = loss_rows(run) if code == 0 else []
    record("train shapes text on cuda", code == 0, seconds=s, steps=steps,
           loop_s=float(rows[-1]["elapsed_s"]) if rows else None, last_loss=float(rows[-1]["loss"]) if rows else None,
           tail=text[-300:] if code else "")
    if code:
        return
    prompts = ["--prompt", "a red circle above a blue square", "--prompt", "a large green triangle on the left"]
    code, text, s = ddpmkit("sample", str(run), *prompts, "--n", "6", "--guidance", "3", "--device", DEVICE,
                            "--out", str(OUT / "shapes_cuda.png"))
    record("sample text with guidance on cuda", code == 0, seconds=s, tail=text[-300:] if code else "")
    code, text, s = ddpmkit("sample", str(run), "a red circle", "--negative", "a blue square", "--n", "4",
                            "--sampler", "ddim", "--steps", "20", "--device", DEVICE, "--out", "/tmp/neg.png")
    record("negative prompt on cuda", code == 0, seconds=s, tail=text[-300:] if code else "")
    code, text, s = ddpmkit("evaluate", str(run), "--metric", "prompt-accuracy", "--n", "60", "--json",
                            "--device", DEVICE, timeout=300)
    res = json_line(text) if code == 0 else {}
    record("shapes prompt-accuracy on cuda", code == 0, seconds=s, accuracy=res.get("accuracy"),
           attributes=res.get("attributes"), note=f"{steps} training steps: a plumbing check, not the target")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text-encoder", default="all-MiniLM-L6-v2", help="name or local folder of the text encoder")
    ap.add_argument("--steps", type=int, default=400, help="MNIST training steps")
    ap.add_argument("--text-steps", type=int, default=300, help="shapes training steps")
    ap.add_argument("--runs", type=Path, default=Path("/tmp/ddpmkit-gpu-runs"))
    ap.add_argument("--parts", nargs="+", default=["samplers", "learned", "text"],
                    choices=["samplers", "learned", "text"], help="checks besides MNIST training, NLL and FID")
    ap.add_argument("--device", default="cuda", help="cpu: try this script itself where there is no GPU")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    import torch
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA GPU here; run it on a GPU machine (benchmarks/gpu_check.sh)")
    RESULTS["machine"] = {"gpu": torch.cuda.get_device_name(0) if DEVICE == "cuda" else None, "torch": torch.__version__,
                          "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    t0 = time.time()
    run = check_mnist(args.runs, args.steps)
    if RESULTS["train mnist on cuda"]["ok"] or (run / "ema.safetensors").exists():
        if "samplers" in args.parts:
            check_samplers(run)
        check_metrics(run)
    if "learned" in args.parts:
        learned = check_learned(args.runs, max(50, args.steps // 4))
        if RESULTS["train learned variance + hybrid loss on cuda"]["ok"]:
            check_metrics(learned, fid=False)
    if "text" in args.parts:
        check_text(args.runs, args.text_encoder, args.text_steps)
    RESULTS["seconds"] = round(time.time() - t0, 1)
    failed = [k for k, v in RESULTS.items() if isinstance(v, dict) and v.get("ok") is False]
    RESULTS["failed"] = failed
    save()
    print(f"gpu_check: {len(failed)} failed {failed} in {RESULTS['seconds']} s; {OUT / 'gpu_check.json'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
