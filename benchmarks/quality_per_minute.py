"""(c) Quality per CPU-minute: the same wall-clock budget for each toolkit's own recommended training on the embedded
MNIST digits, then domain FID (ddpmkit.metrics, MNIST-classifier features) of samples from each against mnist-test.

The networks are matched to ddpmkit's mnist-tiny (±2 % parameters, see peers.py); the recipes are each toolkit's own:
- ddpmkit: ``ddpmkit train`` with its defaults (batch 64, Adam lr 1e-3, bf16 autocast, EMA 0.9999 with warm-up), stopped
  by Ctrl-C (SIGINT, which it saves on) at the deadline; samples: ancestral DDPM from the EMA weights.
- diffusers: a loop written in the style of its unconditional training example: DDPMScheduler.add_noise + UNet2DModel
  + AdamW(lr 1e-4, β 0.95/0.999, wd 1e-6) + 500 warm-up steps and cosine decay (ending at the deadline) + grad clip 1
  + EMAModel(0.9999, warm-up, power 3/4), batch 16, fp32; samples: DDPMPipeline from the EMA weights.
- denoising-diffusion-pytorch: its Trainer on a folder of the same digits as PNGs with its defaults (batch 16, Adam
  lr 1e-4, EMA 0.995 every 10 steps, fp32; GaussianDiffusion: v-prediction, sigmoid schedule), no flips (digits),
  no built-in FID (it downloads Inception); stopped at the deadline; samples: GaussianDiffusion.sample from its EMA
  (DDIM when --sample-steps < 1000).
Every toolkit's clock starts when its process is launched (imports included) and stops at the same budget.

    python benchmarks/quality_per_minute.py                     # full: 10 min each, 1,000 samples, 100 sampler steps
    python benchmarks/quality_per_minute.py --quick --toolkits ddpmkit   # smoke run, well under a minute
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import peers  # noqa: E402
import report  # noqa: E402

SETTING = "mnist-tiny"
FULL = dict(budget_min=10.0, n_samples=1000, sample_steps=100, threads=0)
QUICK = dict(budget_min=0.25, n_samples=16, sample_steps=2, threads=1)
CHUNK = 250   # images per sampling batch


# ---------------------------------------------------------------------------------------------------- workers
def train_ddpmkit(out: Path, deadline: float) -> dict:
    run = out / "run"
    proc = subprocess.Popen(["ddpmkit", "train", "--out", str(run), "--steps", str(10 ** 9), "--no-progress",
                             "--overwrite"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        proc.wait(timeout=max(0.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        while not (run / "logs" / "loss.csv").exists() and proc.poll() is None:   # its Ctrl-C handler is set
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)   # the trainer finishes its step, saves model + EMA, and exits
    log = proc.communicate()[0]
    m = re.search(r"at step (\d+)", log)
    if proc.returncode or not m:
        raise RuntimeError(f"ddpmkit train failed (exit {proc.returncode}):\n{log[-2000:]}")
    return {"steps": int(m.group(1)), "batch": 64, "log": log.strip().splitlines()[0]}


def sample_ddpmkit(out: Path, n: int, steps: int) -> torch.Tensor:
    from ddpmkit.pipeline import Pipeline
    pipe = Pipeline.load(out / "run", weights="ema")
    return torch.cat([pipe.generate(n=min(CHUNK, n - i), sampler="ddpm", steps=steps, seed=i)
                      for i in range(0, n, CHUNK)])


def train_diffusers(out: Path, deadline: float, budget: float, n: int, steps: int) -> tuple[dict, torch.Tensor]:
    import torch.nn.functional as F
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
    from diffusers.training_utils import EMAModel

    from ddpmkit.data import load_dataset
    data, batch, lr, warmup = load_dataset("mnist"), 16, 1e-4, 500
    net = peers.build("diffusers", SETTING)
    sched = DDPMScheduler(num_train_timesteps=peers.T, beta_schedule="linear")
    opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    ema = EMAModel(net.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75,
                   model_cls=UNet2DModel, model_config=net.config)
    g = torch.Generator().manual_seed(0)
    start, step = deadline - budget, 0
    net.train()
    while time.time() < deadline:
        # cosine decay to zero at the deadline (the example's default schedule, its end set by time, not steps)
        progress = min(1.0, (time.time() - start) / budget)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        x0 = data.batch(torch.randint(len(data), (batch,), generator=g))
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, peers.T, (batch,), generator=g)
        loss = F.mse_loss(net(sched.add_noise(x0, noise, t), t).sample.float(), noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.step(net.parameters())
        step += 1
    train_end = time.time()
    ema.copy_to(net.parameters())
    net.eval()
    pipe = DDPMPipeline(unet=net, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(0)
    chunks = [pipe(batch_size=min(CHUNK, n - i), generator=gen, num_inference_steps=steps, output_type="np").images
              for i in range(0, n, CHUNK)]
    images = torch.cat([torch.from_numpy(c).permute(0, 3, 1, 2) for c in chunks]) * 2 - 1
    return {"steps": step, "batch": batch, "train_end": train_end}, images


def train_ddp(out: Path, deadline: float, folder: Path, n: int, steps: int) -> tuple[dict, torch.Tensor]:
    from denoising_diffusion_pytorch import GaussianDiffusion, Trainer
    net = peers.build("ddp", SETTING)
    diffusion = GaussianDiffusion(net, image_size=28, timesteps=peers.T,   # its defaults: pred_v, sigmoid schedule
                                  sampling_timesteps=steps if steps < peers.T else None)
    trainer = Trainer(diffusion, str(folder), train_num_steps=10 ** 9, augment_horizontal_flip=False,
                      calculate_fid=False, results_folder=str(out / "results"))
    stop = threading.Timer(max(0.0, deadline - time.time()), lambda: setattr(trainer, "train_num_steps", 0))
    stop.start()
    trainer.train()   # returns at the first step boundary after the deadline
    stop.cancel()
    train_end = time.time()
    torch.manual_seed(0)
    ema = trainer.ema.ema_model.eval()
    images = torch.cat([ema.sample(batch_size=min(CHUNK, n - i)) for i in range(0, n, CHUNK)]) * 2 - 1
    return {"steps": trainer.step, "batch": trainer.batch_size, "train_end": train_end}, images


def worker(args) -> None:
    out = Path(args.out)
    tk, budget = args.worker, args.budget_min * 60
    t_train = time.time()
    if tk == "ddpmkit":
        info = train_ddpmkit(out, args.deadline)
        info["train_end"] = time.time()
        images = sample_ddpmkit(out, args.n_samples, args.sample_steps)
    else:
        peers.require(tk)
        if tk == "diffusers":
            info, images = train_diffusers(out, args.deadline, budget, args.n_samples, args.sample_steps)
        else:
            info, images = train_ddp(out, args.deadline, Path(args.folder), args.n_samples, args.sample_steps)
    t_end = time.time()
    # quantise to 8-bit levels as saved images are, the same for every toolkit
    images = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    torch.save(images, out / "samples_uint8.pt")
    train_end = info.pop("train_end")
    info.update(train_s_in_worker=round(train_end - t_train, 1), sample_s=round(t_end - train_end, 1), n=len(images))
    (out / "result.json").write_text(json.dumps(info))


# ---------------------------------------------------------------------------------------------------- parent
def png_folder(root: Path) -> Path:
    """The embedded training digits as PNGs, for denoising-diffusion-pytorch's folder Trainer (written once)."""
    from PIL import Image

    from ddpmkit.data import load_dataset
    folder = root / "mnist_png"
    data = load_dataset("mnist")
    if len(list(folder.glob("*.png"))) != len(data):
        folder.mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(data.images[:, 0].numpy()):
            Image.fromarray(im, mode="L").save(folder / f"{i:05d}.png")
    return folder


def run_toolkit(tk: str, args, root: Path, folder: Path | None) -> dict:
    out = root / tk
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("result.json", "samples_uint8.pt"):
        (out / stale).unlink(missing_ok=True)
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    launched = time.time()
    cmd = [sys.executable, __file__, "--worker", tk, "--deadline", repr(launched + args.budget_min * 60),
           "--out", str(out), "--budget-min", str(args.budget_min), "--n-samples", str(args.n_samples),
           "--sample-steps", str(args.sample_steps)] + (["--folder", str(folder)] if folder else [])
    with open(out / "worker.log", "w") as log:
        rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc:
        raise RuntimeError(f"{tk} worker failed (exit {rc}); see {out / 'worker.log'}")
    info = json.loads((out / "result.json").read_text())
    info["images_seen"] = info["steps"] * info["batch"]
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 15 s budget, 16 samples, 2 sampler steps")
    ap.add_argument("--toolkits", nargs="+", choices=peers.TOOLKITS, default=list(peers.TOOLKITS))
    ap.add_argument("--budget-min", type=float, help="training wall-clock budget per toolkit [10; quick 0.25]")
    ap.add_argument("--n-samples", type=int, help="samples per toolkit for FID [1000; quick 16]")
    ap.add_argument("--sample-steps", type=int, help="sampler network evaluations [100; 1000 = full ancestral]")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for every worker [0: torch's default; quick 1]")
    ap.add_argument("--workdir", default="runs/bench-quality", help="run folders and samples (git-ignored)")
    for hidden in ("--worker", "--deadline", "--out", "--folder"):
        ap.add_argument(hidden, type=float if hidden == "--deadline" else str, help=argparse.SUPPRESS)
    args = ap.parse_args()
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.worker:
        return worker(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ddpmkit.data import load_dataset
    from ddpmkit.metrics import evaluate_images

    toolkits = peers.available(args.toolkits)
    root = Path(args.workdir) / ("quick" if args.quick else "full")
    folder = png_folder(root.parent) if "ddp" in toolkits else None
    results, t0 = {}, time.time()
    for tk in toolkits:
        info = run_toolkit(tk, args, root, folder)
        images = torch.load(root / tk / "samples_uint8.pt").float() / 127.5 - 1
        info.update(evaluate_images(images, reference="mnist-test", metrics=("fid", "kid")))
        results[tk] = info
        print(f"{tk}: FID {info['fid']:.2f} after {info['steps']} steps ({info['images_seen']} images)", flush=True)
    train = load_dataset("mnist")
    real = train.batch(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:args.n_samples])
    floor = evaluate_images(real, reference="mnist-test", metrics=("fid",))["fid"]

    def row(label, key, scale=1.0):
        return [label, *(results[tk][key] * scale if tk in results else None for tk in peers.TOOLKITS)]
    fid = {tk: r["fid"] for tk, r in results.items()}
    best = "—" if len(fid) < 2 else ("yes" if min(fid, key=fid.get) == "ddpmkit" else "no")
    n = args.n_samples
    rows = [row(f"domain FID, {n} samples vs mnist-test (lower is better)", "fid") + [best],
            row("KID × 1000 (mean)", "kid_mean", 1000.0) + [""],
            row("training steps in the budget", "steps") + [""],
            row("images seen in the budget", "images_seen") + [""],
            row("training wall s in worker (budget counts from process launch)", "train_s_in_worker") + [""],
            [f"reference: FID of {n} real training digits vs mnist-test", floor, None, None, ""]]
    counts = peers.matched_counts([SETTING], toolkits)[SETTING]
    notes = [f"Budget {args.budget_min:g} min of training per toolkit on {torch.get_num_threads()} torch threads, "
             "one toolkit at a time; networks matched to mnist-tiny: "
             + ", ".join(f"{peers.NAMES[tk]} {n:,} parameters" for tk, n in counts.items()) + ".",
             f"Samplers, {args.sample_steps} network evaluations each: ddpmkit ancestral DDPM (trailing spacing), "
             "diffusers DDPMPipeline (ancestral, leading spacing), denoising-diffusion-pytorch "
             + ("DDIM η=0 (its respaced path)" if args.sample_steps < peers.T else "ancestral") + "; EMA weights.",
             "Recipes are each toolkit's own defaults (see the docstring of benchmarks/quality_per_minute.py): "
             "ddpmkit's were tuned for this CPU, the peers' for GPUs, so this compares out-of-the-box results.",
             "Target: ddpmkit has the lowest FID."]
    section = {"columns": ["Figure", *(peers.NAMES[tk] for tk in peers.TOOLKITS), "ddpmkit best"], "rows": rows,
               "notes": notes, "data": {"toolkits": results, "real_floor_fid": floor, "budget_min": args.budget_min,
                                        "sample_steps": args.sample_steps, "n_samples": n},
               "machine": peers.machine(), "versions": peers.versions(), "command": report.command_line()}
    path = report.update("quality_per_minute", section, args.quick)
    print(f"done in {time.time() - t0:.0f} s; results: {path}")


if __name__ == "__main__":
    main()
