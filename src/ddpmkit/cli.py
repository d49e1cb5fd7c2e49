"""The ``ddpmkit`` command: a thin shell over ``train`` and ``pipeline``. Errors a user can cause print one line."""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import click

from .errors import UserError


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ddpmkit")
def cli() -> None:
    """Denoising diffusion probabilistic models (Ho et al. 2020): train, sample, evaluate."""


@cli.command()
@click.option("--dataset", default="mnist", show_default=True,
              help="mnist (embedded, 9,000 digits), torchvision-mnist or cifar10 (with --data-root), or a folder of images.")
@click.option("--data-root", default=None, help="Existing torchvision dataset root (nothing is downloaded).")
@click.option("--out", "out", default=None, help="Run folder [default: runs/<dataset>].")
@click.option("--preset", default="mnist-tiny", show_default=True,
              help="U-Net preset: mnist-tiny, mnist-small, ddpm-cifar10, ddpm-256.")
@click.option("--steps", type=int, default=None, callback=_positive, help="Total training steps [default: 2400].")
@click.option("--batch-size", type=int, default=None, callback=_positive, help="Batch size [default: 64].")
@click.option("--lr", type=float, default=None, callback=_positive, help="Peak learning rate [default: 1e-3].")
@click.option("--warmup-steps", type=int, default=None, help="Linear LR warm-up steps [default: 100].")
@click.option("--optimizer", type=click.Choice(["adam", "adamw"]), default=None)
@click.option("--weight-decay", type=float, default=None)
@click.option("--ema-decay", type=float, default=None, help="EMA decay [default: 0.9999, with warm-up].")
@click.option("--schedule", type=click.Choice(["linear", "cosine", "sigmoid"]), default="linear", show_default=True)
@click.option("--timesteps", "num_timesteps", type=int, default=1000, show_default=True, callback=_positive)
@click.option("--prediction", type=click.Choice(["eps", "x0", "v"]), default="eps", show_default=True)
@click.option("--variance", type=click.Choice(["fixed_small", "fixed_large", "learned"]), default="fixed_small",
              show_default=True)
@click.option("--loss", type=click.Choice(["simple", "vlb", "hybrid"]), default="simple", show_default=True)
@click.option("--timestep-sampler", type=click.Choice(["uniform", "loss-second-moment"]), default="uniform",
              show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True)
@click.option("--hflip/--no-hflip", default=False, show_default=True, help="Random horizontal flips.")
@click.option("--image-size", type=int, default=None, callback=_positive, help="Resize folders to this square size.")
@click.option("--channels", type=click.IntRange(1, 3), default=None, help="1 (grayscale) or 3 (RGB) for folders.")
@click.option("--sample-every", type=int, default=None, callback=_positive)
@click.option("--save-every", type=int, default=None, callback=_positive)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped (--steps sets the new total).")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(dataset, data_root, out, preset, steps, resume, overwrite, progress, schedule, num_timesteps, prediction,
          variance, **train_kwargs) -> None:
    """Train a DDPM. With no arguments: the embedded MNIST digits, a CPU preset, about 12 minutes on 2 cores."""
    from dataclasses import replace

    from .config import DiffusionConfig, RunConfig, TrainConfig
    from .train import Trainer

    out = Path(out or Path("runs") / Path(dataset).name)
    tc = TrainConfig(dataset=dataset, data_root=data_root, preset=preset)
    tc = replace(tc, **{k: v for k, v in train_kwargs.items() if v is not None})
    cfg = RunConfig(diffusion=DiffusionConfig(schedule, num_timesteps, prediction, variance), train=tc)
    trainer = Trainer(out, cfg, resume=resume, overwrite=overwrite, progress=progress, steps=steps)
    if trainer.data.skipped:
        click.echo(f"note: skipped {len(trainer.data.skipped)} file(s) in {dataset} that are not readable images", err=True)
    res = trainer.train()
    state = "interrupted; saved" if res.interrupted else "done"
    click.echo(f"{state} at step {res.step} in {res.wall_time_s:.0f} s ({res.steps_per_s:.2f} steps/s), "
               f"final loss {res.final_loss:.4f}")
    click.echo(f"run folder: {out}  (samples: {out / 'samples'}, loss curve: {out / 'logs' / 'loss.png'})")
    if res.interrupted:
        click.echo(f"continue with: ddpmkit train --out {out} --resume")


def _writable_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {parent} ({e.strerror}): choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise UserError(f"{parent} is not writable: choose a writable --out")


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--n", "n", type=int, default=64, show_default=True, callback=_positive, help="Number of images.")
@click.option("--steps", type=int, default=None, callback=_positive, help="Sampler steps [default: all T].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("samples.png"), show_default=True,
              help="Grid PNG; single PNGs go to a folder beside it named after it.")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--no-clip", is_flag=True, help="Do not clip the predicted x_0 to [-1, 1].")
@click.option("--denoising-grid", type=click.Path(path_type=Path), default=None,
              help="Also write the denoising shown step by step: x_t and predicted x_0 at 10 points (Ho et al. Fig. 6).")
def sample(run, n, steps, seed, out, weights, no_clip, denoising_grid) -> None:
    """Draw images from a trained run with the ancestral sampler (Ho et al. Algorithm 2)."""
    from .pipeline import Pipeline
    from .viz import make_grid, save_png, to_pil

    _writable_parent(out)
    pipe = Pipeline.load(run, weights=weights)
    frames: list = []
    total = steps or pipe.schedule.num_steps
    marks = {round(i * (total - 1) / 9) for i in range(10)}

    def keep(state: dict) -> None:
        if denoising_grid is not None and state["i"] in marks:
            frames.append((state["x"][:8].clone(), state["x0_pred"][:8].clone()))

    images = to_pil(pipe.generate(n=n, steps=steps, seed=seed, clip_x0=not no_clip, callback=keep))
    save_png(make_grid(images), out)
    singles = out.with_suffix("")
    singles.mkdir(exist_ok=True)
    for i, im in enumerate(images):
        save_png(im, singles / f"{i:04d}.png")
    click.echo(f"wrote {out} and {len(images)} PNGs in {singles}/")
    if denoising_grid is not None:
        _writable_parent(denoising_grid)
        import torch
        rows = [to_pil(torch.cat([x for x, _ in frames], 0).float()), to_pil(torch.cat([x0 for _, x0 in frames], 0).float())]
        k = frames[0][0].shape[0]
        # one row per sample: x_t over time, then x̂_0 over time
        tiles = []
        for j in range(k):
            tiles += [rows[0][f * k + j] for f in range(len(frames))] + [rows[1][f * k + j] for f in range(len(frames))]
        save_png(make_grid(tiles, nrow=2 * len(frames)), denoising_grid)
        click.echo(f"wrote {denoising_grid} (each row: x_t left to right, then predicted x_0)")


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--metric", type=click.Choice(["nll"]), default="nll", show_default=True)
@click.option("--n", "n", type=int, default=100, show_default=True, callback=_positive,
              help="Held-out images to evaluate.")
@click.option("--batch-size", type=int, default=100, show_default=True, callback=_positive)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
def evaluate(run, metric, n, batch_size, seed, as_json) -> None:
    """Measure a run: NLL in bits/dim (the full bound over all T terms plus the prior) on held-out images."""
    from .evaluate import evaluate_nll

    res = evaluate_nll(run, n=n, batch_size=batch_size, seed=seed, progress=True)
    if as_json:
        click.echo(json.dumps(res))
    else:
        click.echo(f"NLL {res['bits_per_dim']:.4f} ± {res['stderr']:.4f} bits/dim on {res['n']} held-out images "
                   f"({res['dataset']}; prior term {res['prior_bpd']:.2e}, decoder term {res['decoder_bpd']:.4f})")


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
def info(run) -> None:
    """Describe a run folder: model, diffusion, training and data."""
    from .checkpoint import load_state, read_json
    from .nn import count_parameters
    from .pipeline import Pipeline

    pipe = Pipeline.load(run)
    raw = read_json(Path(run) / "config.json")
    state_path = Path(run) / "state.safetensors"
    step = int(load_state(state_path)["step"]) if state_path.exists() else None
    m, d, t = pipe.config.model, pipe.config.diffusion, pipe.config.train
    click.echo(f"run        {run}")
    click.echo(f"model      U-Net {count_parameters(pipe.model) / 1e6:.2f}M params, {m.in_channels}x{m.image_size}x"
               f"{m.image_size}, channels {m.base_channels}x{list(m.channel_mults)}, attention at {list(m.attention_resolutions)}")
    click.echo(f"diffusion  {d.schedule} schedule, T={d.num_timesteps}, predicts {d.prediction}, variance {d.variance}")
    click.echo(f"training   step {step} of {t.steps}, batch {t.batch_size}, lr {t.lr:g}, loss {t.loss}, seed {t.seed}")
    data = raw.get("data", {})
    click.echo(f"data       {data.get('name', t.dataset)} ({data.get('num_images', '?')} images)")


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="ddpmkit", standalone_mode=False)
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()} (see --help)", err=True)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
