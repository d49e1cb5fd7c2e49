"""Measurements of a run folder, shared by the CLI and benchmarks."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .data import load_dataset
from .likelihood import bits_per_dim
from .pipeline import Pipeline


def evaluate_nll(run_dir: str | Path, n: int = 100, batch_size: int = 100, seed: int = 0,
                 progress: bool = False) -> dict:
    """Bits/dim of the full bound on the first ``n`` held-out images of the run's dataset (MNIST: the 1,000
    held-out digits; folders and other sets: their images, which may be the training images)."""
    pipe = Pipeline.load(run_dir)
    tc = pipe.config.train
    data = load_dataset(tc.dataset, tc.data_root, tc.image_size, tc.channels, split="test")
    n = min(n, len(data))
    g = torch.Generator().manual_seed(seed)
    totals, priors, decoders = [], [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=math.ceil(n / batch_size) * pipe.schedule.num_steps, desc="nll", unit="eval")
    for start in range(0, n, batch_size):
        x0 = data.batch(torch.arange(start, min(n, start + batch_size))).to(pipe.device)
        r = bits_per_dim(pipe.denoiser, x0, generator=g, progress=bar.update if bar else None)
        totals.append(r["total"])
        priors.append(r["prior"])
        decoders.append(r["terms"][:, 0])
    if bar:
        bar.close()
    total = torch.cat(totals)
    return {"metric": "nll", "bits_per_dim": float(total.mean()),
            "stderr": float(total.std() / math.sqrt(len(total))) if len(total) > 1 else float("nan"),
            "prior_bpd": float(torch.cat(priors).mean()), "decoder_bpd": float(torch.cat(decoders).mean()),
            "n": len(total), "dataset": data.name}
