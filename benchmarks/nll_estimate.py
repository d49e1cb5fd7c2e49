"""The importance-sampled NLL estimate against the full bound, on one unconditional run: value, standard error,
wall time and network evaluations, the same held-out images for every row.

    python benchmarks/nll_estimate.py runs/mnist-uncond            # ~8 min on 2 cores (the full bound is most of it)
    python benchmarks/nll_estimate.py RUN --timesteps 25 50 100 --n 100

Writes benchmarks/results/nll_estimate.json. The estimate's error against the full bound should be within a few
of its standard errors (both are estimates of the same expectation; the full bound draws one x_t per term).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

from ddpmkit.evaluate import evaluate_nll  # noqa: E402


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
    for r in rows[1:]:
        r["minus_full"] = r["bits_per_dim"] - full["bits_per_dim"]
        r["speedup"] = round(full["wall_s"] / r["wall_s"], 1)
    out = {"run": args.run, "n": args.n, "rows": rows, "commit": report.commit(), "command": report.command_line()}
    path = report.ROOT / "benchmarks" / "results" / "nll_estimate.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path.relative_to(report.ROOT)}")


if __name__ == "__main__":
    main()
