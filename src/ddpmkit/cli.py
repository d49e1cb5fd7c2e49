"""The ``ddpmkit`` command: a thin shell over ``train`` and ``pipeline``. Errors a user can cause print one line."""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import click

from .errors import UserError


def _non_negative(ctx, param, value):
    if value is not None and not value >= 0:
        raise click.BadParameter(f"must be 0 or more, got {value}")
    return value


def _layers(ctx, param, value):
    """"3" → 3, "3,6" → [3, 6] (hidden states concatenated), None → None."""
    if value is None:
        return None
    try:
        picks = [int(x) for x in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"give whole layer numbers, comma-separated (3 or 3,6), got {value!r}") from None
    return picks[0] if len(picks) == 1 else picks


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ddpmkit")
def cli() -> None:
    """Denoising diffusion probabilistic models (Ho et al. 2020): train, sample, evaluate."""


DEVICE_OPTION = click.option(
    "--device", default="auto", show_default=True,
    help="Where to run the network: auto (the GPU if torch sees one, else the CPU), cpu, cuda, cuda:N, mps.")


@cli.command()
@click.option("--dataset", default="mnist", show_default=True,
              help="mnist (embedded, 9,000 digits), torchvision-mnist or cifar10 (with --data-root), or a folder of images.")
@click.option("--data-root", default=None, help="Existing torchvision dataset root (nothing is downloaded).")
@click.option("--out", "out", default=None, help="Run folder [default: runs/<dataset>].")
@click.option("--preset", default=None,
              help="U-Net preset: mnist-tiny, mnist-small, tiny-32, ddpm-cifar10, ddpm-256 [default: mnist-tiny for "
                   "28×28 digits, tiny-32 otherwise].")
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
@click.option("--snr-gamma", type=float, default=None, callback=_non_negative,
              help="Min-SNR-γ loss weighting (Hang et al. 2023) [default: 5; 0 = off, the paper's plain L_simple].")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True)
@click.option("--hflip/--no-hflip", default=False, show_default=True, help="Random horizontal flips.")
@click.option("--image-size", type=int, default=None, callback=_positive, help="Resize folders to this square size.")
@click.option("--channels", type=click.IntRange(1, 3), default=None, help="1 (grayscale) or 3 (RGB) for folders.")
@click.option("--text-encoder", default=None,
              help="Train text-to-image with this frozen encoder (all-MiniLM-L6-v2 ships offline; any "
                   "sentence-transformers or Hugging Face name or path). Needs a captioned dataset.")
@click.option("--caption-dropout", type=float, default=None, help="Share of captions dropped to the null prompt "
              "for classifier-free guidance [default: 0.1].")
@click.option("--first-caption-steps", type=int, default=None, callback=_non_negative,
              help="Curriculum: the first N steps train on each image's first caption only, later steps on all its "
                   "captions (paraphrases) [default: 0].")
@click.option("--text-layers", type=int, default=None, callback=_non_negative,
              help="Trainable transformer layers over the frozen encoder's token states [default: 0].")
@click.option("--text-positions/--no-text-positions", default=None,
              help="Add learned position features to the token states, so cross-attention (blind to token order) "
                   "can tell which object a relation names first [default: off].")
@click.option("--cross-attention", type=click.Choice(["joint", "separate"]), default=None,
              help="How the U-Net reads the token states: joint, as extra keys of each self-attention (GLIDE), or "
                   "separate, a cross-attention of its own after it (latent diffusion) [default: joint].")
@click.option("--text-pooled/--no-text-pooled", default=None,
              help="Add the encoder's pooled sentence vector to the time embedding (GLIDE); with --no-text-pooled "
                   "the prompt reaches the U-Net through cross-attention on its tokens only [default: on].")
@click.option("--text-encoder-layer", type=str, default=None, callback=_layers,
              help="Which hidden state of the frozen encoder gives the token states: 0 the embeddings, k after k "
                   "layers, negative from the end; several, comma-separated (3,6), are concatenated along the "
                   "features [default: the last]. The pooled vector stays the encoder's own.")
@click.option("--text-noise", type=float, default=None,
              help="Conditioning augmentation: Gaussian noise on the training captions' token states and pooled "
                   "vector, in units of each feature's std over the captions (0.1: a tenth) [default: 0].")
@click.option("--token-dropout", type=float, default=None,
              help="Hide this share of each training caption's tokens (all but the first) from the cross-attention, "
                   "so attributes are also read from the pooled sentence vector. On shapes 0.2 lost word order "
                   "(README, session 18) [default: 0].")
@click.option("--text-key-rank", type=int, default=None, callback=_non_negative,
              help="Attention keys read the token states through their K principal directions over the training "
                   "captions, so unseen synonyms of trained words are attended to more; values read the full "
                   "states. On shapes 16 did not make unseen size words read (README, session 18) [default: 0, keys "
                   "read everything].")
@click.option("--shapes-captions", type=int, default=None, callback=_positive,
              help="--dataset shapes: phrasings per training scene, its template caption plus paraphrases, one drawn "
                   "per step [default: 1].")
@click.option("--shapes-pairs", type=float, default=None,
              help="--dataset shapes: share of two-object scenes in the training pool [default: 0.5].")
@click.option("--shapes-reversed", type=float, default=None,
              help="--dataset shapes: share of those pairs captioned right / lower object first ('right of', "
                   "'below') rather than left / upper first ('left of', 'above') [default: 0.5].")
@click.option("--shapes-vocabulary", type=click.Choice(["base", "wide"]), default=None,
              help="--dataset shapes: the paraphrases' wordings; wide adds relation verbs and every wording of the "
                   "held-out sets 1-7 (then only sets 8 and 9 are unseen). On set 8 it read two of four new relation "
                   "verbs, not new size words, and cost trained size (README, session 19) [default: base].")
@click.option("--shapes-forward-steps", type=int, default=None, callback=_non_negative,
              help="--dataset shapes, curriculum: the first N steps draw no pair captioned right / lower object "
                   "first, so which object a relation names first is learnt before the direction flips it "
                   "[default: 0].")
@click.option("--sample-every", type=int, default=None, callback=_positive)
@click.option("--save-every", type=int, default=None, callback=_positive)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped (--steps sets the new total).")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(dataset, data_root, out, preset, steps, resume, overwrite, progress, schedule, num_timesteps, prediction,
          variance, **train_kwargs) -> None:
    """Train a DDPM. With no arguments: the embedded MNIST digits, a CPU preset, about 17 minutes on 2 cores;
    add --text-encoder all-MiniLM-L6-v2 for text-to-image (about 18 minutes)."""
    from dataclasses import replace

    from .config import DiffusionConfig, RunConfig, TrainConfig
    from .train import Trainer

    out = Path(out or Path("runs") / Path(dataset).name)
    tc = TrainConfig(dataset=dataset, data_root=data_root, preset=preset)
    tc = replace(tc, **{k: v for k, v in train_kwargs.items() if v is not None})
    if tc.snr_gamma == 0:
        tc = replace(tc, snr_gamma=None)
    cfg = RunConfig(diffusion=DiffusionConfig(schedule, num_timesteps, prediction, variance), train=tc)
    trainer = Trainer(out, cfg, resume=resume, overwrite=overwrite, progress=progress, steps=steps)
    if trainer.data.skipped:
        click.echo(f"note: skipped {len(trainer.data.skipped)} file(s) in {dataset} that are not readable images", err=True)
    res = trainer.train()
    if not res.is_main:     # a distributed run: the main process reports
        return
    state = "interrupted; saved" if res.interrupted else "done"
    where = f"{res.processes} processes on {res.device} (batch {tc.batch_size} each)" if res.processes > 1 else res.device
    click.echo(f"{state} at step {res.step} in {res.wall_time_s:.0f} s ({res.steps_per_s:.2f} steps/s on {where}), "
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
@click.argument("args", nargs=-1)
@click.option("--prompt", "prompts", multiple=True,
              help="What to draw (text models); same as the PROMPT argument. Repeat it for a grid with one row "
                   "per prompt (the same --n seeds in every row).")
@click.option("--n", "n", type=int, default=64, show_default=True, callback=_positive,
              help="Number of images (per prompt).")
@click.option("--sampler", type=click.Choice(["ddpm", "ddim", "dpmpp-2m", "heun", "euler"]), default=None,
              help="[default: ddpm (ancestral, Algorithm 2) for unconditional models, dpmpp-2m for text models]")
@click.option("--steps", type=int, default=None, callback=_positive,
              help="Sampler steps [default: all T for ddpm; 50 for text models].")
@click.option("--eta", type=float, default=0.0, show_default=True, help="DDIM's η (0: deterministic).")
@click.option("--guidance", type=float, default=None,
              help="Classifier-free guidance scale for text models [default: 3.0; 1 = none, 0 = unconditional].")
@click.option("--negative", default=None, help="Negative prompt: guide away from it instead of the null prompt.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("samples.png"), show_default=True,
              help="Grid PNG; single PNGs go to a folder beside it named after it.")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True)
@click.option("--no-clip", is_flag=True, help="Do not clip the predicted x_0 to [-1, 1].")
@click.option("--dynamic-threshold", type=float, default=None, metavar="P",
              help="Imagen's dynamic thresholding of the predicted x_0 at percentile P in (0, 1), e.g. 0.995, "
                   "instead of clipping (helps at high guidance).")
@click.option("--denoising-grid", type=click.Path(path_type=Path), default=None,
              help="Also write the denoising shown step by step: x_t and predicted x_0 at 10 points (Ho et al. Fig. 6).")
@DEVICE_OPTION
def sample(args, prompts, n, sampler, steps, eta, guidance, negative, seed, out, weights, no_clip,
           dynamic_threshold, denoising_grid, device) -> None:
    """Draw images: `ddpmkit sample [RUN] [PROMPT]`. Without RUN, the shipped text-to-image MNIST model."""
    from .pipeline import Pipeline
    from .viz import make_grid, save_png, to_pil

    run, prompt = _run_and_prompt(args, prompts[0] if len(prompts) == 1 else None)
    rows = list(prompts) if len(prompts) > 1 else [prompt]
    if len(prompts) > 1 and prompt is not None:
        raise UserError("give the prompts either as one PROMPT argument or as repeated --prompt, not both")
    if dynamic_threshold is not None and (no_clip or not 0.0 < dynamic_threshold < 1.0):
        raise UserError(f"--dynamic-threshold must be a percentile in (0, 1), e.g. 0.995, and cannot be combined "
                        f"with --no-clip (got {dynamic_threshold})")
    clip_x0 = dynamic_threshold if dynamic_threshold is not None else not no_clip
    _writable_parent(out)
    pipe = Pipeline.load(run, weights=weights, device=device)
    frames: list = []
    total = pipe.resolve_sampler(sampler, steps)[1]
    marks = {round(i * (total - 1) / 9) for i in range(10)}

    def keep(state: dict) -> None:      # the denoising grid shows the first prompt's images
        if denoising_grid is not None and state["i"] in marks and len(frames) < len(marks):
            frames.append((state["x"][:8].clone(), state["x0_pred"][:8].clone()))

    images = []
    for row in rows:    # every row starts from the same seed, so rows differ only by their prompt
        images += to_pil(pipe.generate(row, n=n, steps=steps, seed=seed, guidance=guidance, negative=negative,
                                       sampler=sampler, eta=eta, clip_x0=clip_x0, callback=keep))
    save_png(make_grid(images, nrow=n if len(rows) > 1 else None), out)
    singles = out.with_suffix("")
    singles.mkdir(exist_ok=True)
    for i, im in enumerate(images):
        save_png(im, singles / f"{i:04d}.png")
    click.echo(f"wrote {out} and {len(images)} PNGs in {singles}/")
    if denoising_grid is not None and frames:
        _writable_parent(denoising_grid)
        import torch
        xs = to_pil(torch.cat([x for x, _ in frames], 0).float())
        x0s = to_pil(torch.cat([x0 for _, x0 in frames], 0).float())
        k = frames[0][0].shape[0]
        tiles = []      # one row per sample: x_t over time, then predicted x_0 over time
        for j in range(k):
            tiles += [xs[f * k + j] for f in range(len(frames))] + [x0s[f * k + j] for f in range(len(frames))]
        save_png(make_grid(tiles, nrow=2 * len(frames)), denoising_grid)
        click.echo(f"wrote {denoising_grid} (each row: x_t left to right, then predicted x_0)")


def _run_and_prompt(args: tuple[str, ...], prompt: str | None) -> tuple[Path | None, str | None]:
    """`sample RUN PROMPT`, `sample RUN`, `sample PROMPT` (shipped model) or `sample`: a first argument that is an
    existing folder, or looks like a path (a separator and no space), is the run."""
    if len(args) > 2:
        raise UserError(f"expected at most RUN and PROMPT, got {len(args)} arguments: quote the prompt")
    run = None
    rest = list(args)
    looks_like_path = bool(rest) and ("/" in rest[0] or os.sep in rest[0]) and " " not in rest[0]
    if rest and (Path(rest[0]).is_dir() or looks_like_path or len(rest) == 2):
        run = Path(rest.pop(0))
    if rest:
        if prompt is not None:
            raise UserError("give the prompt once: either as an argument or with --prompt")
        prompt = rest[0]
    return run, prompt


@cli.command()
@click.argument("run", required=False, type=click.Path(path_type=Path))
@click.option("--metric", type=click.Choice(["nll", "fid", "kid", "pr", "prompt-accuracy"]), default="nll",
              show_default=True)
@click.option("--n", "n", type=int, default=None, callback=_positive,
              help="Images: held-out images for nll [100], samples for fid/kid/pr [1000], per digit for "
                   "prompt-accuracy [100], or held-out scenes for prompt-accuracy of a shapes run [300].")
@click.option("--batch-size", type=int, default=100, show_default=True, callback=_positive)
@click.option("--sampler", type=click.Choice(["ddpm", "ddim", "dpmpp-2m", "heun", "euler"]), default=None,
              help="Sampler for generated images [default: as `ddpmkit sample`].")
@click.option("--steps", type=int, default=None, callback=_positive, help="Sampler steps for generated images.")
@click.option("--guidance", type=float, default=None, help="Guidance scale for text models [default: 3.0].")
@click.option("--held-out-phrasings", is_flag=True, help="prompt-accuracy: prompt with paraphrases never trained on.")
@click.option("--held-out-set", type=click.IntRange(1, 9), default=None,   # 1 to max(shapes.captions.HELD_OUT_SETS)
              help="prompt-accuracy of a shapes run: which set of paraphrases never trained on (1: the one "
                   "--held-out-phrasings uses; 2-9: shapes.captions.HELD_OUT_2 ... HELD_OUT_9, written later).")
@click.option("--samples", type=click.Path(path_type=Path), default=None,
              help="Folder mode: a folder of generated images to compare with --reference (no RUN).")
@click.option("--reference", default="mnist-test", show_default=True,
              help="Folder mode: mnist-test, mnist-train or a folder of reference images.")
@click.option("--feature", type=click.Choice(["mnist", "inception"]), default="mnist", show_default=True,
              help="Feature space: the project's MNIST classifier (offline) or standard Inception-v3.")
@click.option("--inception-weights", type=click.Path(path_type=Path), default=None,
              help="Local pt_inception-2015-12-05 weights file for --feature inception (never downloaded).")
@click.option("--nll-timesteps", type=int, default=None, callback=_positive,
              help="nll: estimate the bound from this many importance-sampled timesteps per image (plus the "
                   "decoder term and the prior, exact) instead of all T; unbiased, with its standard error.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON line.")
@DEVICE_OPTION
def evaluate(run, metric, n, batch_size, sampler, steps, guidance, held_out_phrasings, held_out_set, samples, reference,
             feature, inception_weights, nll_timesteps, seed, as_json, device) -> None:
    """Measure a run (default: the shipped model) as papers do: NLL in bits/dim (the full bound over all T terms
    plus the prior, or its importance-sampled estimate), FID/KID/precision-recall of samples, or prompt accuracy; or
    compare two folders of images."""
    from . import evaluate as ev
    from .pipeline import Pipeline

    gen_kwargs = dict(steps=steps, sampler=sampler, guidance=guidance)
    weights = str(inception_weights) if inception_weights else None
    if nll_timesteps is not None and (metric != "nll" or samples is not None):
        raise UserError("--nll-timesteps estimates the bound of --metric nll on a run: drop it for other metrics")
    if samples is not None:
        if metric not in ("fid", "kid", "pr"):
            raise UserError("folder mode (--samples) measures fid, kid or pr: pass --metric fid")
        res = ev.folder_metrics(samples, reference, (metric,), feature, weights)
    elif metric == "nll":
        res = ev.evaluate_nll(run, n=n or 100, batch_size=batch_size, seed=seed, progress=True, device=device,
                              timesteps=nll_timesteps)
    elif metric == "prompt-accuracy":
        # dispatches on the run's dataset: MNIST digits (classifier), or shapes scenes (detector)
        res = ev.prompt_accuracy(Pipeline.load(run, device=device), n_per_digit=n or 100, n_scenes=n or 300,
                                 held_out=held_out_set or held_out_phrasings, seed=seed, **gen_kwargs)
    else:
        res = ev.sample_metrics(Pipeline.load(run, device=device), (metric,), n=n or 1000, seed=seed, feature=feature,
                                inception_weights=weights, **gen_kwargs)
    if as_json:
        click.echo(json.dumps(res))
    elif metric == "nll" and samples is None:
        how = ("" if res["method"] == "full bound" else f"; importance-sampled, {res['timesteps']} timesteps per "
               f"image, proposal from {res['pilot_images']} images")
        click.echo(f"NLL {res['bits_per_dim']:.4f} ± {res['stderr']:.4f} bits/dim on {res['n']} held-out images "
                   f"({res['dataset']}; prior term {res['prior_bpd']:.2e}, decoder term {res['decoder_bpd']:.4f}{how})")
    elif metric == "prompt-accuracy" and res.get("dataset") == "shapes":
        from .shapes.evaluate import format_result
        click.echo(format_result(res))
    elif metric == "prompt-accuracy":
        digits = " ".join(f"{d}:{a:.0%}" for d, a in enumerate(res["per_digit"]))
        click.echo(f"prompt accuracy {res['accuracy']:.1%} on {res['n']} images ({digits})")
    else:
        click.echo(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items()
                             if k != "feature_fingerprint"))


@cli.command()
@click.argument("run", required=False, type=click.Path(path_type=Path))
def info(run) -> None:
    """Describe a run folder: model, diffusion, training and data."""
    from .checkpoint import load_state, read_json
    from .nn import count_parameters
    from .pipeline import Pipeline

    pipe = Pipeline.load(run)
    run = pipe.run_dir
    raw = read_json(Path(run) / "config.json")
    state_path = Path(run) / "state.safetensors"
    step = int(load_state(state_path)["step"]) if state_path.exists() else None
    m, d, t = pipe.config.model, pipe.config.diffusion, pipe.config.train
    click.echo(f"run        {run}")
    click.echo(f"model      U-Net {count_parameters(pipe.model) / 1e6:.2f}M params, {m.in_channels}x{m.image_size}x"
               f"{m.image_size}, channels {m.base_channels}x{list(m.channel_mults)}, attention at {list(m.attention_resolutions)}")
    click.echo(f"diffusion  {d.schedule} schedule, T={d.num_timesteps}, predicts {d.prediction}, variance {d.variance}")
    done = step if step is not None else t.steps      # shipped weights carry no training state: they are final
    click.echo(f"training   step {done} of {t.steps}, batch {t.batch_size}, lr {t.lr:g}, loss {t.loss}, "
               f"seed {t.seed}")
    data = raw.get("data", {})
    click.echo(f"data       {data.get('name', t.dataset)} ({data.get('num_images', '?')} images)")
    if t.text_encoder:
        picked = t.text_encoder_layer
        layer = ("" if picked is None else f" (token states from layer {picked})" if isinstance(picked, int) else
                 f" (token states from layers {'+'.join(map(str, picked))}, concatenated)")
        noise = f", text noise {t.text_noise:g}" if t.text_noise else ""
        noise += f", keys through rank {t.text_key_rank}" if t.text_key_rank else ""
        noise += f", token dropout {t.token_dropout:g}" if t.token_dropout else ""
        click.echo(f"text       {t.text_encoder}{layer}, caption dropout {t.caption_dropout:g}{noise}")


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
