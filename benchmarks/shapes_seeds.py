"""How reliable is a shapes text-to-image recipe? Train one run per (variant, seed), several at once, and score each
run's EMA weights at chosen steps: prompt accuracy at the default guidance on the training phrasings and on the
held-out paraphrase sets (``ddpmkit.evaluate.shapes_prompt_accuracy``; ``--wordings`` picks some, each costs about
200 s per run on 2 cores). One JSON line per (variant, seed, step). Lines written before a set existed lack it;
``shapes_held_out.py`` scores finished runs.

    python benchmarks/shapes_seeds.py --seeds 0 1 2 3 --out runs/seeds/results.jsonl \\
        --variant readme --variant "previous:text_encoder_layer=3,cross_attention='joint',shapes_forward_steps=0" \\
        --variant "l3:text_encoder_layer=3"

A variant is NAME[:field=value,...]: TrainConfig fields changed from the README's shapes recipe (RECIPE below), values
as Python literals. Jobs start seed by seed (every variant of seed 0, then of seed 1, ...), so a run cut short by
--deadline still compares the variants on the same seeds. Runs go to --run-root/NAME-sSEED. The checkpoint at a step
does not depend on the run's total --steps (the learning rate is constant after warm-up), so --evals 1150 2300 3450
with --steps 3450 also gives the 2300-step recipe's result.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ddpmkit.shapes.captions import HELD_OUT_SETS

RECIPE = {"dataset": "shapes", "text_encoder": "all-MiniLM-L6-v2", "text_encoder_layer": [3, 6], "shapes_captions": 3,
          "shapes_pairs": 0.6, "cross_attention": "separate", "shapes_forward_steps": 1000,
          "steps": 2300}   # the README's `ddpmkit train --dataset shapes ...` command


def parse_variant(spec: str) -> tuple[str, dict]:
    """``NAME[:field=value,...]`` -> (NAME, {field: value}); values are Python literals, lists included."""
    name, _, rest = spec.partition(":")
    try:
        call = ast.parse(f"f({rest})", mode="eval").body
        fields = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        if call.args or None in fields:
            raise ValueError
    except (SyntaxError, ValueError):
        raise SystemExit(f"cannot read variant {spec!r}: write NAME:field=value,... with Python literals, "
                         "e.g. sep36:cross_attention='separate',text_encoder_layer=[3,6]") from None
    return name, fields


# the caption wordings each run is scored on (key in the results line: ``held_out`` argument)
# (derived from HELD_OUT_SETS, so a new held-out set can be scored without editing this table)
WORDINGS = {"train_phrasings": False, "held_out": True, **{f"held_out_{k}": k for k in sorted(HELD_OUT_SETS) if k > 1}}


def score(pipe, n: int, held_out: bool | int) -> dict:
    """Colour / shape / position / relation / size accuracy, all named attributes (``all``), relation per relation
    and per relation wording, size per size word and per prompted size (and their balanced mean), and position per
    place, of ``n`` held-out scenes at the default guidance, prompted in
    the wording ``held_out`` selects."""
    from ddpmkit.evaluate import shapes_prompt_accuracy
    from ddpmkit.pipeline import DEFAULT_GUIDANCE

    r = shapes_prompt_accuracy(pipe, n=n, guidance=DEFAULT_GUIDANCE, held_out=held_out)
    return {**{k: r["attributes"][k] for k in ("color", "shape", "position", "relation", "size")}, "all": r["accuracy"],
            "per_relation": r["per_relation"], "per_relation_wording": r["per_relation_wording"],
            "per_size_wording": r["per_size_wording"], "per_size": r["per_size"], "size_balanced": r["size_balanced"],
            "per_position": r["per_position"]}


def child(args) -> None:
    """One run: train, and score the EMA weights each time a checkpoint at an --evals step is written."""
    import copy

    import torch

    from ddpmkit.config import RunConfig, TrainConfig
    from ddpmkit.pipeline import Pipeline
    from ddpmkit.train import Trainer

    from report import commit as checkout_commit   # benchmarks/ is on sys.path: this file runs as a script

    name, fields = parse_variant(args.child)
    commit = checkout_commit()   # read before training: the checkout may change while a run trains
    evals = sorted(set(args.evals))
    every = evals[0] if all(e % evals[0] == 0 for e in evals) else 1
    tc = TrainConfig(**{**RECIPE, "steps": max(evals), "seed": args.seed, "save_every": every, **fields})
    cfg = RunConfig(train=tc)
    t0 = time.time()

    def on_save(step: int, ema_model: torch.nn.Module) -> None:
        if step not in evals:
            return
        pipe = Pipeline(copy.deepcopy(ema_model), trainer.config)   # trainer: bound below, before train() calls this
        pipe._encoder = trainer.encoder.to(pipe.device)
        row = {"variant": name, "fields": fields, "seed": args.seed, "step": step, "commit": commit,
               "train_s": round(time.time() - t0, 1), "device": str(pipe.device)}
        for key in args.wordings:
            row[key] = score(pipe, args.n, WORDINGS[key])
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: row[k] for k in ("variant", "seed", "step", "train_s")}),
              {k: row[k]["relation"] for k in args.wordings}, flush=True)

    trainer = Trainer(Path(args.run_root) / f"{name}-s{args.seed}", cfg, overwrite=True, progress=False,
                      on_save=on_save)
    trainer.train()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", action="append", default=[], help="NAME[:field=value,...] (repeatable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--evals", type=int, nargs="+", default=[2300], help="steps at which to score the EMA weights")
    ap.add_argument("--n", type=int, default=300, help="held-out scenes per score (about half are pairs)")
    ap.add_argument("--wordings", nargs="+", choices=list(WORDINGS), default=list(WORDINGS),
                    help="caption wordings to score each checkpoint on")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    ap.add_argument("--deadline", type=float, default=None, help="seconds: start no run after, stop all at")
    ap.add_argument("--run-root", default="runs/seeds")
    ap.add_argument("--out", default="runs/seeds/results.jsonl")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.child is not None:
        child(args)
        return
    variants = args.variant or ["readme"]
    for v in variants:          # a malformed variant stops here, not in a child's log after setup
        parse_variant(v)
    jobs = [(v, s) for s in args.seeds for v in variants]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    common = ["--evals", *map(str, args.evals), "--n", str(args.n), "--wordings", *args.wordings,
              "--run-root", args.run_root, "--out", args.out]
    t0, running = time.time(), []
    while jobs or running:
        running = [(p, j) for p, j in running if p.poll() is None]
        late = args.deadline is not None and time.time() - t0 > args.deadline
        if late:
            for p, j in running:
                print(f"deadline: stopping {j}", flush=True)
                p.kill()
            break
        while jobs and len(running) < args.jobs:
            v, s = jobs.pop(0)
            cmd = [sys.executable, __file__, "--child", v, "--seed", str(s), *common]
            running.append((subprocess.Popen(cmd, env=env), (v, s)))
        time.sleep(2)
    print(f"done in {time.time() - t0:.0f} s; results in {args.out}", flush=True)


if __name__ == "__main__":
    main()
