"""The training loop: Adam(W), warm-up, clipping, EMA, mixed precision, Accelerate, atomic checkpoints, logs.

It calls ``losses`` and nothing else of the diffusion math. A run folder holds config.json, model.safetensors,
ema.safetensors, state.safetensors (optimizer, step, RNG), samples/ and logs/.
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from . import __version__
from .checkpoint import load_state, load_tensors, read_json, save_state, save_tensors, write_json
from .config import RunConfig
from .data import ImageTensorDataset, load_dataset
from .denoiser import Denoiser
from .errors import UserError
from .guidance import guided, null_like
from .losses import diffusion_losses, make_timestep_sampler
from .nn import UNet, preset_config
from .samplers import sample_ddpm
from .viz import make_grid, plot_loss_curve, save_png, to_pil

RUN_FILES = ("config.json", "model.safetensors", "ema.safetensors", "state.safetensors")


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 arithmetic (AVX-512 BF16 or AMX), so autocast is a speed-up."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_supports_bf16() else "fp32"


def default_preset(data: ImageTensorDataset) -> str:
    """mnist-tiny for 28×28 grayscale digits, tiny-32 for anything else (shapes, folders)."""
    return "mnist-tiny" if tuple(data.shape) == (1, 28, 28) else "tiny-32"


def model_config_for(cfg: RunConfig, data: ImageTensorDataset, text_dims: tuple[int, int] | None = None):
    """The preset's U-Net, sized for the data's channels and resolution, with learned-variance outputs if asked."""
    c, h, w = data.shape
    if h != w:
        raise UserError(f"images are {h}x{w}: ddpmkit trains on square images; crop them or use a folder dataset")
    try:
        context_dim, pooled_dim = text_dims or (None, None)
        if not cfg.train.text_pooled:
            pooled_dim = None
        mc = preset_config(cfg.train.preset, image_size=h, in_channels=c,
                           learn_sigma=cfg.diffusion.variance == "learned", context_dim=context_dim,
                           pooled_dim=pooled_dim, text_layers=cfg.train.text_layers,
                           text_positions=cfg.train.text_positions, cross_attention=cfg.train.cross_attention,
                           text_key_rank=cfg.train.text_key_rank)
    except ValueError as e:
        raise UserError(f"{e}") from None
    f = mc.downsample_factor
    if h % f:
        raise UserError(f"image size {h} is not divisible by {f}, which preset {cfg.train.preset} needs: "
                        f"pass --image-size {max(f, round(h / f) * f)}")
    return mc


def ema_avg_fn(decay: float, warmup: bool):
    """EMA of weights (Polyak averaging) for torch's AveragedModel; with warm-up the decay grows as (1+n)/(10+n)."""

    def avg(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        n = int(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n)) if warmup else decay
        return torch.lerp(averaged, current, 1.0 - d)

    return avg


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool
    wall_time_s: float
    steps_per_s: float
    final_loss: float
    processes: int = 1          # Accelerate processes (GPUs) that trained together; each drew its own batch
    device: str = "cpu"
    is_main: bool = True


class Trainer:
    """``Trainer(run_dir, config).train()``; ``resume=True`` continues a run exactly where it stopped."""

    def __init__(self, run_dir: str | Path, config: RunConfig | None = None, *, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, steps: int | None = None,
                 on_step=None, on_save=None):
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.on_step = on_step   # called as on_step(step, loss) after every optimizer step (progress UIs, tests)
        self.on_save = on_save   # called as on_save(step, ema_model) on the main process after each checkpoint
        if resume and overwrite:
            raise UserError("--resume and --overwrite contradict each other: pick one")
        self.resume = resume and (self.run_dir / "state.safetensors").exists()
        if resume and not self.resume:
            raise UserError(f"nothing to resume in {self.run_dir}: it has no state.safetensors; "
                            f"drop --resume to start a new run")
        if self.resume:
            config = RunConfig.from_dict(read_json(self.run_dir / "config.json"))
        else:
            config = config or RunConfig()
            self._check_fresh_dir(overwrite)
        if steps is not None:
            config = replace(config, train=replace(config.train, steps=steps))
        config.train.validate()
        config.diffusion.validate()
        self.data = load_dataset(config.train.dataset, config.train.data_root, config.train.image_size,
                                 config.train.channels, shapes_captions=config.train.shapes_captions,
                                 shapes_pairs=config.train.shapes_pairs,
                                 shapes_reversed=config.train.shapes_reversed,
                                 shapes_vocabulary=config.train.shapes_vocabulary)
        self.captions = None
        text_dims = None
        if config.train.text_encoder:
            if self.data.captions is None:
                raise UserError(f"dataset {config.train.dataset} has no captions: add metadata.jsonl or .txt "
                                f"sidecars, or train without --text-encoder")
            from .conditioning import CaptionBank
            from .text import TextEncoder
            from accelerate import PartialState
            # on this process's accelerator where it has one: encoding every caption once is then seconds, not a
            # minute per 40,000 captions on a CPU; the bank keeps the states on the CPU with the rest of the data
            self.encoder = TextEncoder.for_run(config.train, device=PartialState().device)
            self.captions = CaptionBank(self.encoder, self.data.captions)
            text_dims = (self.encoder.dim, self.encoder.pooled_dim)
        if not self.resume:
            if config.train.preset is None:
                config = replace(config, train=replace(config.train, preset=default_preset(self.data)))
            config = replace(config, model=model_config_for(config, self.data, text_dims))
            # Only now, with config, data and network known to be good, may --overwrite remove the old run.
            self._prepare_fresh_dir()
        self.config = config

    def _check_fresh_dir(self, overwrite: bool) -> None:
        d = self.run_dir
        if d.exists() and not d.is_dir():
            raise UserError(f"{d} exists and is not a folder: choose another --out")
        if d.exists() and any(d.iterdir()) and not overwrite:
            raise UserError(f"run folder {d} already exists: pass --resume to continue it, --overwrite to "
                            f"replace it, or --out for a new folder")

    def _prepare_fresh_dir(self) -> None:
        d = self.run_dir
        if d.exists() and any(d.iterdir()):
            shutil.rmtree(d)
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / ".write-probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise UserError(f"cannot write to {d} ({e.strerror}): choose a writable --out folder") from None

    # ------------------------------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        from accelerate import Accelerator
        from tqdm.auto import tqdm

        cfg, tc = self.config, self.config.train
        precision = resolve_precision(tc.precision)
        # Autocast is ours rather than Accelerate's mixed_precision: bf16 needs no loss scaling, and Accelerate's
        # process-wide state refuses a second Trainer with another precision in the same process.
        acc = Accelerator()
        autocast = torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        main = acc.is_main_process
        gen = torch.Generator()     # data, timesteps, noise, flips; dropout draws from the global RNG

        def seed_streams(base: int) -> None:
            """Each process its own stream of both: base + its rank."""
            torch.manual_seed(base + acc.process_index)
            gen.manual_seed(base + acc.process_index)

        seed_streams(tc.seed)

        schedule = cfg.diffusion.build_schedule()
        net = UNet(cfg.model)
        if cfg.model.text_key_rank:     # before the EMA copy, so both hold the basis (a resumed run loads its own)
            net.fit_key_basis(self.captions.cond.tokens[self.captions.cond.mask])
        ema = AveragedModel(net, avg_fn=ema_avg_fn(tc.ema_decay, tc.ema_warmup), use_buffers=True)
        opt_cls = torch.optim.AdamW if tc.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        tsampler = make_timestep_sampler(tc.timestep_sampler, schedule.num_steps)
        step = 0
        if self.resume:
            step = self._load_checkpoint(net, ema, opt, tsampler, gen)
            if not main:    # the checkpoint holds the main process's RNG: every other process needs its own stream
                seed_streams(tc.seed + 1_000_003 * step)
        net, opt = acc.prepare(net, opt)
        ema.to(acc.device)
        denoiser = Denoiser(net, schedule, cfg.diffusion.prediction, cfg.diffusion.variance)

        logs = self.run_dir / "logs"
        samples = self.run_dir / "samples"
        if main:
            logs.mkdir(exist_ok=True)
            samples.mkdir(exist_ok=True)
            write_json(self.run_dir / "config.json", {**cfg.to_dict(), "ddpmkit_version": __version__,
                                                     "data": {"name": self.data.name, "num_images": len(self.data),
                                                              "shape": list(self.data.shape)}})
            self._trim_log(logs / "loss.csv", step)
        stop = {"flag": False}
        old_handler = None
        if main and hasattr(signal, "SIGINT"):
            def on_sigint(signum, frame):
                if stop["flag"]:
                    raise KeyboardInterrupt
                stop["flag"] = True
            try:
                old_handler = signal.signal(signal.SIGINT, on_sigint)
            except ValueError:   # not the main thread
                old_handler = None

        forward = self._forward_scenes() if tc.shapes_forward_steps > step else None
        start_step, t0, last_loss = step, time.time(), float("nan")
        bar = tqdm(total=tc.steps, initial=step, disable=not (self.progress and main), dynamic_ncols=True,
                   desc="train", unit="step")
        log_f = open(logs / "loss.csv", "a", newline="") if main else None
        writer = csv.writer(log_f) if log_f else None
        if log_f is not None and log_f.tell() == 0:
            writer.writerow(["step", "loss", "mse", "vlb", "lr", "elapsed_s"])
        try:
            net.train()
            while step < tc.steps and not stop["flag"]:
                lr = tc.lr * min(1.0, (step + 1) / tc.warmup_steps) if tc.warmup_steps else tc.lr
                for g in opt.param_groups:
                    g["lr"] = lr
                if forward is not None and step < tc.shapes_forward_steps:   # the curriculum's pool
                    idx = forward[torch.randint(len(forward), (tc.batch_size,), generator=gen)]
                else:
                    idx = torch.randint(len(self.data), (tc.batch_size,), generator=gen)
                x0 = self.data.batch(idx)
                if tc.hflip:
                    flip = torch.rand(tc.batch_size, generator=gen) < 0.5
                    x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
                cond = None
                if self.captions is not None:
                    cond = self.captions.draw(idx, gen, tc.caption_dropout, first_only=step < tc.first_caption_steps,
                                              noise=tc.text_noise, token_dropout=tc.token_dropout).to(acc.device)
                t, weights = tsampler.sample(tc.batch_size, gen)
                noise = torch.randn(x0.shape, generator=gen)
                x0, t, noise, weights = (v.to(acc.device) for v in (x0, t, noise, weights))
                with autocast:
                    terms = diffusion_losses(denoiser, x0, t, noise, cond=cond, loss_type=tc.loss,
                                             snr_gamma=tc.snr_gamma)
                loss = (terms["loss"] * weights).mean()
                acc.backward(loss)
                acc.clip_grad_norm_(net.parameters(), tc.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                ema.update_parameters(acc.unwrap_model(net))
                tsampler.update(t.cpu(), (terms["vlb"] if tc.loss != "simple" else terms["loss"]).detach().cpu())
                step += 1
                last_loss = float(loss.detach())
                if not torch.isfinite(loss.detach()):
                    raise UserError(f"loss became {last_loss} at step {step}: lower --lr or use --precision fp32")
                bar.update(1)
                if self.on_step is not None:
                    self.on_step(step, last_loss)
                if step % tc.log_every == 0 or step == tc.steps:
                    bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.1e}")
                    if writer:
                        writer.writerow([step, f"{last_loss:.6f}", f"{float(terms['mse'].detach().mean()):.6f}",
                                         f"{float(terms['vlb'].detach().mean()):.6f}", f"{lr:.3e}", f"{time.time() - t0:.2f}"])
                        log_f.flush()
                if main and (step % tc.save_every == 0) and step < tc.steps:
                    self._save(acc, net, ema, opt, tsampler, gen, step)
                if main and step % tc.sample_every == 0 and step < tc.steps:
                    self.write_samples(ema.module, schedule, step)
        finally:
            bar.close()
            if log_f:
                log_f.close()
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        acc.wait_for_everyone()
        wall = time.time() - t0
        self.model, self.ema_model = acc.unwrap_model(net), ema.module   # for callers that go on in memory
        if main:
            self._save(acc, net, ema, opt, tsampler, gen, step)
            if not stop["flag"]:
                self.write_samples(ema.module, schedule, step)
            plot_loss_curve(logs / "loss.csv", logs / "loss.png")
        done = step - start_step
        return TrainResult(self.run_dir, step, stop["flag"], wall, done / wall if wall > 0 else 0.0, last_loss,
                           acc.num_processes, acc.device.type, main)

    def _forward_scenes(self) -> torch.Tensor:
        """Indices of the shapes scenes that --shapes-forward-steps draws from: single objects and the pairs named
        left / upper object first."""
        from .shapes.scene import REVERSED
        return torch.tensor([i for i, label in enumerate(self.data.scene_labels) if label["relation"] not in REVERSED])

    # ------------------------------------------------------------------------------------------------------------
    def write_samples(self, ema_net: torch.nn.Module, schedule, step: int) -> Path:
        """A grid from the EMA weights with a fixed seed, so grids across training are comparable."""
        tc = self.config.train
        was_training = ema_net.training
        ema_net.eval()
        device = next(ema_net.parameters()).device
        c, h, w = self.data.shape
        g = torch.Generator().manual_seed(tc.seed)
        x = torch.randn((tc.sample_n, c, h, w), generator=g).to(device)
        den = Denoiser(ema_net, schedule, self.config.diffusion.prediction, self.config.diffusion.variance)
        cond = None
        if self.captions is not None:       # the first images' captions, guided as the studio would draw them
            caps = self.data.captions
            cond = self.encoder([caps[i % len(caps)][0] for i in range(tc.sample_n)]).to(device)
            den = guided(den, tc.sample_guidance, null_like(cond))
        imgs = sample_ddpm(den, x, min(tc.sample_steps, schedule.num_steps), cond=cond, generator=g)
        ema_net.train(was_training)
        path = self.run_dir / "samples" / f"step_{step:07d}.png"
        save_png(make_grid(to_pil(imgs)), path)
        return path

    def _save(self, acc, net, ema, opt, tsampler, gen, step: int) -> None:
        meta = {"step": str(step)}
        save_tensors(self.run_dir / "model.safetensors", acc.unwrap_model(net).state_dict(), meta)
        save_tensors(self.run_dir / "ema.safetensors", ema.module.state_dict(), meta)
        state = {"step": step, "optimizer": opt.state_dict(), "ema_n_averaged": ema.n_averaged,
                 "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                 "timestep_sampler": tsampler.state_dict()}
        save_state(self.run_dir / "state.safetensors", state)   # written last: it marks a complete checkpoint
        if self.on_save is not None:
            self.on_save(step, ema.module)

    def _load_checkpoint(self, net, ema, opt, tsampler, gen) -> int:
        state = load_state(self.run_dir / "state.safetensors")
        step = int(state["step"])
        for name, module in (("model.safetensors", net), ("ema.safetensors", ema.module)):
            _load_weights(module, self.run_dir / name)
        ema.n_averaged.copy_(state["ema_n_averaged"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        tsampler.load_state_dict(state["timestep_sampler"])
        return step

    @staticmethod
    def _trim_log(path: Path, step: int) -> None:
        """On resume, drop log rows written after the checkpoint so the curve has no duplicates."""
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step] if rows else []
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(keep)
        os.replace(tmp, path)


def _load_weights(module: torch.nn.Module, path: Path) -> None:
    tensors = load_tensors(path)
    missing, unexpected = set(module.state_dict()) - set(tensors), set(tensors) - set(module.state_dict())
    bad_shape = [k for k, v in module.state_dict().items() if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or bad_shape:
        what = (f"{len(missing)} missing, {len(unexpected)} unexpected, {len(bad_shape)} mis-shaped tensors")
        raise UserError(f"{path} does not match its config.json ({what}): the files come from different runs")
    module.load_state_dict(tensors)
