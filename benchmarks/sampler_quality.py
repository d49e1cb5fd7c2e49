"""Quality against network evaluations (NFE) for every sampler, on the shipped text-to-image MNIST model.

For each sampler (ddpmkit's ddpm, ddim, dpmpp-2m, heun, euler; diffusers' DDIMScheduler and
DPMSolverMultistepScheduler with their default settings, driving the same guided network) and each NFE budget, the
same balanced prompts and initial noise are sampled at the default guidance scale; the images are scored by domain FID
(features of the project's MNIST classifier against the 1,000 held-out digits) and by prompt accuracy (the same
classifier reads the prompted digit). NFE is counted at the network (one guided batch = one evaluation).
The noise of FID at this sample size is estimated by a bootstrap over the generated set.

    python benchmarks/sampler_quality.py                      # the shipped model, 200 images per point
    python benchmarks/sampler_quality.py --n 100 --max-nfe-for-all 50   # what fits in ~30 CPU-minutes (2 cores)
    python benchmarks/sampler_quality.py --n 100 --nfe 100 --samplers ddim euler --merge   # add points to that file

Results go to benchmarks/results/sampler_quality.json and the plot to docs/sampler_quality.png.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OURS = ("ddpm", "ddim", "dpmpp-2m", "heun", "euler")
DIFFUSERS = ("diffusers-ddim", "diffusers-dpmpp-2m", "diffusers-dpmpp-2m-thresh")
NFES = (5, 10, 20, 50, 100, 1000)


def steps_for(sampler: str, nfe: int) -> int:
    """Sampler steps that spend at most ``nfe`` evaluations (Heun: 2 per step, the last step is Euler)."""
    return (nfe + 1) // 2 if sampler == "heun" else nfe


def diffusers_sample(name: str, den, cond, x: torch.Tensor, steps: int, schedule) -> torch.Tensor:
    """diffusers' scheduler (default settings, our β table) stepping with our guided denoiser's ε. DDIM clips x̂_0
    by default; DPM-Solver++ does not, so "-thresh" also runs it with its dynamic thresholding (sample_max_value 1,
    ratio 0.995), diffusers' setting for pixel-space models with guidance."""
    import diffusers

    betas = schedule.betas.float().numpy()
    if name == "diffusers-ddim":
        sched = diffusers.DDIMScheduler(num_train_timesteps=schedule.num_steps, trained_betas=betas)
    else:
        sched = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=schedule.num_steps, trained_betas=betas,
                                                      thresholding=name.endswith("-thresh"), sample_max_value=1.0)
    sched.set_timesteps(steps)
    x = x * sched.init_noise_sigma
    for t in sched.timesteps:
        with torch.no_grad():
            eps = den(x, t.expand(x.shape[0]).to(torch.long), cond)
        x = sched.step(eps, t, x).prev_sample
    return x.clamp(-1.0, 1.0)


def bootstrap_fid(feats: torch.Tensor, ref_mu: torch.Tensor, ref_sigma: torch.Tensor, reps: int = 20) -> float:
    from ddpmkit.metrics.frechet import frechet_distance, gaussian_stats

    g = torch.Generator().manual_seed(0)
    vals = []
    for _ in range(reps):
        idx = torch.randint(0, len(feats), (len(feats),), generator=g)
        mu, sigma = gaussian_stats(feats[idx])
        vals.append(frechet_distance(mu, sigma, ref_mu, ref_sigma))
    return float(torch.tensor(vals).std())


def main() -> None:
    from ddpmkit.evaluate import mnist_prompt_set
    from ddpmkit.metrics import load_mnist_classifier
    from ddpmkit.metrics.features import domain_features, reference_features
    from ddpmkit.metrics.frechet import frechet_distance, gaussian_stats
    from ddpmkit.pipeline import DEFAULT_GUIDANCE, Pipeline
    from ddpmkit.samplers import sample

    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=None, help="run folder [default: the shipped text-to-image model]")
    ap.add_argument("--n", type=int, default=200, help="images per point (balanced over the ten digits)")
    ap.add_argument("--nfe", type=int, nargs="*", default=list(NFES))
    ap.add_argument("--samplers", nargs="*", default=list(OURS + DIFFUSERS))
    ap.add_argument("--max-nfe-for-all", type=int, default=100,
                    help="above this NFE only ddpm (the paper's ancestral sampler, the reference) runs, to bound "
                         "the time")
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sampler_quality.json"))
    ap.add_argument("--merge", action="store_true",
                    help="add these points to --out (same model, n and guidance), replacing any of the same sampler "
                         "and NFE; the rest of the file is kept")
    args = ap.parse_args()
    guidance = DEFAULT_GUIDANCE if args.guidance is None else args.guidance
    model_name = str(args.run or "shipped (src/ddpmkit/weights/mnist-text)")
    old = None
    if args.merge:
        old = json.loads(Path(args.out).read_text())
        want = {"n": args.n // 10 * 10, "guidance": guidance, "model": model_name}
        clash = {k: (old.get(k), v) for k, v in want.items() if old.get(k) != v}
        if clash:
            raise SystemExit(f"--merge: {args.out} was measured with other settings {clash} (file, now): "
                             "run with the file's settings, or without --merge to start a new file")

    pipe = Pipeline.load(args.run)
    prompts, digits = mnist_prompt_set(args.n // 10)
    n = len(prompts)
    den, cond = pipe.encode(prompts, n, guidance=guidance)
    calls = [0]
    pipe.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    ref = reference_features("mnist-test")
    classifier = load_mnist_classifier()
    x_T = torch.randn((n, *pipe.image_shape), generator=torch.Generator().manual_seed(0))
    rows = []
    for nfe in args.nfe:
        for name in args.samplers:
            if nfe > args.max_nfe_for_all and name != "ddpm":
                continue
            steps = steps_for(name, nfe)
            calls[0] = 0
            t0 = time.time()
            if name in DIFFUSERS:
                images = diffusers_sample(name, den, cond, x_T, steps, pipe.schedule)
            else:
                images = sample(den, x_T.clone(), sampler=name, steps=steps, cond=cond,
                                generator=torch.Generator().manual_seed(1))
            row = {"sampler": name, "nfe_budget": nfe, "steps": steps, "nfe": calls[0],
                   "seconds": round(time.time() - t0, 1)}
            broken = int((~torch.isfinite(images)).flatten(1).any(dim=1).sum())
            if broken:   # a diverged sampler is a result, not a crash: record it and go on
                row |= {"fid": None, "fid_bootstrap_std": None, "prompt_accuracy": None, "non_finite_images": broken}
            else:
                with torch.no_grad():
                    feats = domain_features(images)
                    pred = classifier.predict(images)
                mu, sigma = gaussian_stats(feats)
                row |= {"fid": round(frechet_distance(mu, sigma, ref["mu"], ref["sigma"]), 3),
                        "fid_bootstrap_std": round(bootstrap_fid(feats, ref["mu"], ref["sigma"]), 3),
                        "prompt_accuracy": round(float((pred.cpu() == digits).float().mean()), 4)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    import diffusers
    command = "python " + " ".join([Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv)])
    if old is not None:
        done = {(r["sampler"], r["nfe_budget"]) for r in rows}
        rows = [r for r in old["rows"] if (r["sampler"], r["nfe_budget"]) not in done] + rows
        rows.sort(key=lambda r: (r["nfe_budget"], list(OURS + DIFFUSERS).index(r["sampler"])))
        command = " && ".join([*([old["command"]] if isinstance(old["command"], str) else old["command"]), command])
    result = {
        "command": command,
        "model": model_name, "guidance": guidance, "n": n,
        "reference": "mnist-test (1,000 held-out digits), MNIST-classifier features",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__},
        "date": time.strftime("%Y-%m-%d"), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, ROOT / "docs" / "sampler_quality.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in dict.fromkeys(r["sampler"] for r in rows):
        rs = sorted((r for r in rows if r["sampler"] == name and r["fid"] is not None), key=lambda r: r["nfe"])
        style = ":" if name.startswith("diffusers") else "-"
        axes[0].plot([r["nfe"] for r in rs], [r["fid"] for r in rs], style, marker="o", label=name)
        axes[1].plot([r["nfe"] for r in rs], [100 * r["prompt_accuracy"] for r in rs], style, marker="o", label=name)
    for ax, label in zip(axes, ("domain FID (lower is better)", "prompt accuracy, %")):
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
