"""The importance-sampled NLL estimate against the full bound, on one unconditional run: value, standard error,
wall time and network evaluations, the same held-out images for every row.

    python benchmarks/nll_estimate.py runs/mnist-uncond            # ~8 min on 2 cores (the full bound is most of it)
    python benchmarks/nll_estimate.py RUN --timesteps 25 50 100 --n 100

Writes benchmarks/results/nll_estimate.json. The estimate's error against the full bound should be within a few
of its standard errors (both are estimates of the same expectation; the full bound draws one x_t per term). For each
K it also measures the estimate's own noise: two estimates of the same images with independent draws.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

import torch  # noqa: E402

from ddpmkit.evaluate import PILOT_IMAGES, evaluate_nll, held_out_data  # noqa: E402
from ddpmkit.likelihood import bits_per_dim_importance, vlb_proposal, vlb_term  # noqa: E402
from ddpmkit.pipeline import Pipeline  # noqa: E402


def decoder_sd(pipe: Pipeline, x0: torch.Tensor, seed: int) -> float:
    """The decoder term L_0's own noise per image between two draws of x_1 (std of the difference / √2), bits/dim:
    computed once per image by both methods, it sets a floor under the estimate's noise that K does not lower."""
    g, t0 = torch.Generator().manual_seed(seed), torch.zeros(len(x0), dtype=torch.long)
    a, b = (vlb_term(pipe.denoiser, x0, t0, None, g) for _ in range(2))
    return float((a - b).std() / 2 ** 0.5)


def sampling_sd(pipe: Pipeline, x0: torch.Tensor, timesteps: int, seed: int) -> float:
    """The estimate's own noise: the per-image standard deviation between two estimates of the same images with
    independent draws (std of their difference / √2), in bits/dim."""
    g = torch.Generator().manual_seed(seed)
    p = vlb_proposal(pipe.denoiser, x0[:PILOT_IMAGES], generator=g)
    a, b = (bits_per_dim_importance(pipe.denoiser, x0, p, timesteps, generator=g)["total"] for _ in range(2))
    return float((a - b).std() / 2 ** 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="an unconditional run folder")
    ap.add_argument("--n", type=int, default=100, help="held-out images [100]")
    ap.add_argument("--timesteps", type=int, nargs="+", default=[25, 50, 100], help="estimates to compare")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for k in [None, *args.timesteps]:
        t0 = time.perf_counter()
        r = evaluate_nll(args.run, n=args.n, seed=args.seed, timesteps=k)
        r["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(r)
        print(f"{r['method']:>18} {'' if k is None else k:>4}: {r['bits_per_dim']:.4f} ± {r['stderr']:.4f} bits/dim "
              f"in {r['wall_s']} s", flush=True)
    full = rows[0]
    pipe = Pipeline.load(args.run)
    x0 = held_out_data(pipe).batch(torch.arange(full["n"]))
    for r in rows[1:]:
        r["minus_full"] = r["bits_per_dim"] - full["bits_per_dim"]
        r["speedup"] = round(full["wall_s"] / r["wall_s"], 1)
        r["sampling_sd_per_image"] = sampling_sd(pipe, x0, r["timesteps"], args.seed + 1)
        r["sampling_se_of_mean"] = r["sampling_sd_per_image"] / full["n"] ** 0.5
        print(f"K = {r['timesteps']}: sampling sd per image {r['sampling_sd_per_image']:.4f}, of the mean "
              f"{r['sampling_se_of_mean']:.4f} bits/dim", flush=True)
    dec = decoder_sd(pipe, x0, args.seed + 2)
    print(f"decoder term alone: sd per image {dec:.4f} bits/dim between two draws", flush=True)
    out = {"run": args.run, "n": args.n, "rows": rows, "decoder_sd_per_image": dec, "commit": report.commit(),
           "command": report.command_line()}
    path = report.ROOT / "benchmarks" / "results" / "nll_estimate.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path.relative_to(report.ROOT)}")


if __name__ == "__main__":
    main()
