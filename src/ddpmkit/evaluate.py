"""Measurements of a run folder, shared by the CLI and benchmarks."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .data import load_dataset
from .errors import UserError
from .likelihood import bits_per_dim, bits_per_dim_importance, vlb_proposal
from .pipeline import Pipeline
# shapes prompt accuracy lives beside its detector; re-exported so both evaluators are found here
from .shapes.evaluate import shapes_prompt_accuracy, shapes_prompt_set  # noqa: F401


PILOT_IMAGES = 16   # images the importance-sampled NLL measures its proposal on


def held_out_data(pipe: Pipeline):
    """The run's dataset, held-out split: what the NLL is measured on."""
    tc = pipe.config.train
    return load_dataset(tc.dataset, tc.data_root, tc.image_size, tc.channels, split="test")


def evaluate_nll(run_dir: str | Path | None, n: int = 100, batch_size: int = 100, seed: int = 0,
                 progress: bool = False, device: str = "cpu", timesteps: int | None = None,
                 pilot: int = PILOT_IMAGES) -> dict:
    """Bits/dim of the bound on the first ``n`` held-out images of the run's dataset (MNIST: the 1,000 held-out
    digits; folders and other sets: their images, which may be the training images).

    ``timesteps=None``: the full bound, T network evaluations per image. ``timesteps=K``: its unbiased
    importance-sampled estimate (``likelihood.bits_per_dim_importance``), K + 1 evaluations per image, with the
    proposal measured on the first ``pilot`` images at 64 timesteps. Either way "stderr" is the standard error of
    the mean over images (for the estimate it includes the sampling noise)."""
    pipe = Pipeline.load(run_dir, device=device)
    if pipe.is_text_model:
        raise UserError("NLL is measured for unconditional models here: the bound of a text model depends on its "
                        "prompts; evaluate prompt-accuracy or fid instead")
    if timesteps is not None and not 1 <= timesteps < pipe.schedule.num_steps:
        raise UserError(f"--nll-timesteps must be between 1 and {pipe.schedule.num_steps - 1} (the model's KL terms), "
                        f"got {timesteps}; leave it out for the full bound")
    data = held_out_data(pipe)
    n = min(n, len(data))
    g = torch.Generator().manual_seed(seed)
    proposal = None
    if timesteps is not None:
        x_pilot = data.batch(torch.arange(min(pilot, n))).to(pipe.device)
        proposal = vlb_proposal(pipe.denoiser, x_pilot, generator=g)
    per_batch = pipe.schedule.num_steps if timesteps is None else timesteps + 1
    totals, priors, decoders = [], [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=math.ceil(n / batch_size) * per_batch, desc="nll", unit="eval")
    for start in range(0, n, batch_size):
        x0 = data.batch(torch.arange(start, min(n, start + batch_size))).to(pipe.device)
        update = bar.update if bar else None
        if timesteps is None:
            r = bits_per_dim(pipe.denoiser, x0, generator=g, progress=update)
            decoders.append(r["terms"][:, 0])
        else:
            r = bits_per_dim_importance(pipe.denoiser, x0, proposal, timesteps, generator=g, progress=update)
            decoders.append(r["decoder"])
        totals.append(r["total"])
        priors.append(r["prior"])
    if bar:
        bar.close()
    total = torch.cat(totals)
    out = {"metric": "nll", "bits_per_dim": float(total.mean()),
           "stderr": float(total.std() / math.sqrt(len(total))) if len(total) > 1 else float("nan"),
           "prior_bpd": float(torch.cat(priors).mean()), "decoder_bpd": float(torch.cat(decoders).mean()),
           "n": len(total), "dataset": data.name,
           "method": "full bound" if timesteps is None else "importance-sampled"}
    if timesteps is not None:
        out |= {"timesteps": timesteps, "pilot_images": min(pilot, n)}
    return out


def mnist_prompt_set(n_per_digit: int, held_out: bool = False) -> tuple[list[str], torch.Tensor]:
    """Balanced prompts: for each digit, ``n_per_digit`` prompts cycling through its phrasings (the training ones,
    or the held-out paraphrases never trained on). Returns (prompts, digit of each prompt)."""
    from .data.captions import mnist_phrasings

    prompts, digits = [], []
    for d in range(10):
        options = mnist_phrasings(d, held_out=held_out)
        prompts += [options[i % len(options)] for i in range(n_per_digit)]
        digits += [d] * n_per_digit
    return prompts, torch.tensor(digits)


def generate_batched(pipe: Pipeline, prompts: list[str] | None, n: int, batch_size: int = 250, seed: int = 0,
                     **kwargs) -> torch.Tensor:
    """n images (prompts[i] for image i, or unconditional), in batches; batch b uses seed + b."""
    out = []
    for b, start in enumerate(range(0, n, batch_size)):
        m = min(batch_size, n - start)
        p = prompts[start:start + m] if prompts is not None else None
        out.append(pipe.generate(p, n=m, seed=seed + b, **kwargs).cpu())
    return torch.cat(out)


def is_shapes_run(pipe: Pipeline) -> bool:
    """Whether the run was trained on the procedural shapes scenes (its prompts are then scenes, not digits)."""
    return pipe.config.train.dataset == "shapes"


def prompt_accuracy(pipe: Pipeline, n_per_digit: int = 100, held_out: bool | int = False, seed: int = 0, *,
                    n_scenes: int = 300, **kwargs) -> dict:
    """Share of generated digits that the shipped MNIST classifier reads as the prompted digit (overall and per
    digit). ``kwargs`` go to ``Pipeline.generate`` (guidance, steps, sampler, ...).

    A run trained on ``shapes`` is measured by ``shapes_prompt_accuracy`` instead, on ``n_scenes`` held-out scenes
    (``n_per_digit`` is then unused); its result has ``"dataset": "shapes"``. ``held_out=2``, ``3`` or ``4``
    picks a later held-out set of the shapes scenes (``shapes.captions.HELD_OUT_2`` ...); MNIST has one."""
    from .metrics import load_mnist_classifier

    if not pipe.is_text_model:
        raise UserError("prompt accuracy needs a text-conditioned model: train with --text-encoder")
    if is_shapes_run(pipe):
        return shapes_prompt_accuracy(pipe, n=n_scenes, seed=seed, held_out=held_out, **kwargs)
    if held_out not in (False, True):
        raise UserError(f"MNIST has one set of held-out phrasings (held_out=True), not {held_out!r}: held-out sets "
                        "2 and later are for shapes runs")
    prompts, digits = mnist_prompt_set(n_per_digit, held_out)
    images = generate_batched(pipe, prompts, len(prompts), seed=seed, **kwargs)
    with torch.no_grad():
        pred = load_mnist_classifier().predict(images).cpu()
    correct = (pred == digits).float()
    per_digit = [float(correct[digits == d].mean()) for d in range(10)]
    return {"metric": "prompt-accuracy", "accuracy": float(correct.mean()), "per_digit": per_digit,
            "n": len(prompts), "held_out_phrasings": held_out, "dataset": "mnist"}


def sample_metrics(pipe: Pipeline, metrics: tuple[str, ...] = ("fid", "kid", "pr"), n: int = 1000, seed: int = 0,
                   feature: str = "mnist", inception_weights: str | None = None, **kwargs) -> dict:
    """FID / KID / precision-recall of n generated images against the 1,000 held-out digits (MNIST-classifier
    features, offline) or, with ``feature="inception"``, standard Inception-v3 features from a local weights file.
    Text models are prompted with balanced digits in the training phrasings."""
    from .metrics import evaluate_images

    prompts = mnist_prompt_set(-(-n // 10))[0][:n] if pipe.is_text_model else None
    if prompts is not None and len(prompts) < n:
        prompts = (prompts * (n // len(prompts) + 1))[:n]
    images = generate_batched(pipe, prompts, n, seed=seed, **kwargs)
    try:
        return evaluate_images(images, reference="mnist-test", metrics=metrics, feature=feature,
                               inception_weights=inception_weights)
    except ValueError as e:
        raise UserError(str(e)) from None


def folder_metrics(samples: str | Path, reference: str, metrics: tuple[str, ...] = ("fid", "kid", "pr"),
                   feature: str = "mnist", inception_weights: str | None = None) -> dict:
    """Compare two sets of images on disk (or a folder against "mnist-test"/"mnist-train")."""
    from .data.images import image_folder
    from .metrics import REFERENCES, evaluate_images

    size, channels = (28, 1) if feature == "mnist" else (299, 3)
    fake = image_folder(samples, size=size, channels=channels)
    ref: str | torch.Tensor = reference
    if reference not in REFERENCES:
        ref_ds = image_folder(reference, size=size, channels=channels)
        ref = ref_ds.batch(torch.arange(len(ref_ds)))
    try:
        return evaluate_images(fake.batch(torch.arange(len(fake))), reference=ref, metrics=metrics, feature=feature,
                               inception_weights=inception_weights)
    except ValueError as e:
        raise UserError(str(e)) from None
