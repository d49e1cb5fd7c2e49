"""The trainer: it learns, it saves and loads exactly, it resumes exactly, Ctrl-C loses nothing."""
import signal
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

import ddpmkit
from ddpmkit.checkpoint import load_state, load_tensors
from ddpmkit.config import DiffusionConfig, RunConfig, TrainConfig
from ddpmkit.pipeline import Pipeline
from ddpmkit.train import Trainer


def tiny(**kw) -> RunConfig:
    tc = dict(dataset="mnist", preset="micro", steps=6, batch_size=4, lr=1e-3, warmup_steps=2, sample_every=1000,
              save_every=1000, sample_n=4, sample_steps=10, log_every=1)
    tc.update(kw)
    return RunConfig(diffusion=DiffusionConfig(num_timesteps=50), train=TrainConfig(**tc))


def test_trainer_overfits_one_image(tmp_path):
    """One 8×8 image: ε is exactly recoverable once the net has memorised x_0, so L_simple must fall far."""
    data = tmp_path / "one"
    data.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(data / "a.png")
    cfg = tiny(dataset=str(data), image_size=8, channels=1, steps=400, batch_size=16, lr=3e-3, warmup_steps=20,
               precision="fp32")
    losses = []
    Trainer(tmp_path / "run", cfg, progress=False, on_step=lambda step, loss: losses.append(loss)).train()
    first, last = np.mean(losses[:20]), np.mean(losses[-50:])
    assert last < 0.25 * first, (first, last)


def test_on_save_sees_every_checkpoint_with_its_ema_weights(tmp_path):
    """``on_save(step, ema_model)`` runs after each checkpoint is written (periodic and final), with the EMA weights
    just saved: what scoring a run while it trains needs."""
    seen = []
    trainer = Trainer(tmp_path / "run", tiny(steps=6, save_every=2), progress=False,
                      on_save=lambda step, ema: seen.append((step, {k: v.clone() for k, v in ema.state_dict().items()})))
    trainer.train()
    assert [step for step, _ in seen] == [2, 4, 6]
    saved = load_tensors(tmp_path / "run" / "ema.safetensors")
    assert saved.keys() == seen[-1][1].keys() and all(torch.equal(saved[k], seen[-1][1][k]) for k in saved)
    assert not all(torch.equal(seen[0][1][k], seen[-1][1][k]) for k in saved)


def test_save_then_load_gives_identical_samples(tmp_path):
    trainer = Trainer(tmp_path / "run", tiny(), progress=False)
    trainer.train()
    in_memory = Pipeline(trainer.ema_model, trainer.config)
    loaded = ddpmkit.load(tmp_path / "run")
    a = in_memory.generate(n=3, steps=10, seed=7)
    b = loaded.generate(n=3, steps=10, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, loaded.generate(n=3, steps=10, seed=8))
    images = loaded(n=2, steps=5, seed=0)
    assert len(images) == 2 and images[0].size == (28, 28) and images[0].mode == "L"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_2n_equals_train_n_plus_resume_n(tmp_path, precision):
    cfg = tiny(steps=8, precision=precision, save_every=3)
    Trainer(tmp_path / "straight", cfg, progress=False).train()
    Trainer(tmp_path / "split", replace(cfg, train=replace(cfg.train, steps=4)), progress=False).train()
    res = Trainer(tmp_path / "split", resume=True, steps=8, progress=False).train()
    assert res.step == 8
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_tensors(tmp_path / "straight" / name), load_tensors(tmp_path / "split" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    sa, sb = load_state(tmp_path / "straight" / "state.safetensors"), load_state(tmp_path / "split" / "state.safetensors")
    assert torch.equal(sa["generator"], sb["generator"]) and sa["step"] == sb["step"] == 8
    rows = (tmp_path / "split" / "logs" / "loss.csv").read_text().strip().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 9))     # no duplicated log rows


def test_ctrl_c_saves_and_exits_cleanly_then_resumes(tmp_path):
    def interrupt(step, loss):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    res = Trainer(tmp_path / "run", tiny(steps=10), progress=False, on_step=interrupt).train()
    assert res.interrupted and res.step == 3
    assert load_state(tmp_path / "run" / "state.safetensors")["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # handler restored
    res = Trainer(tmp_path / "run", resume=True, progress=False).train()
    assert not res.interrupted and res.step == 10


def test_outputs_of_a_run_folder(tmp_path):
    Trainer(tmp_path / "run", tiny(steps=4, sample_every=2), progress=False).train()
    run = tmp_path / "run"
    for f in ("config.json", "model.safetensors", "ema.safetensors", "state.safetensors", "logs/loss.csv",
              "logs/loss.png", "samples/step_0000002.png", "samples/step_0000004.png"):
        assert (run / f).is_file(), f
    assert not list(run.glob(".*.tmp"))                                    # no temp file left behind


def test_learned_variance_with_hybrid_loss_and_importance_sampling_trains(tmp_path):
    cfg = tiny(steps=4, loss="vlb", timestep_sampler="loss-second-moment")
    cfg = replace(cfg, diffusion=DiffusionConfig(num_timesteps=50, variance="learned", prediction="v"))
    res = Trainer(tmp_path / "run", cfg, progress=False).train()
    assert np.isfinite(res.final_loss)
    pipe = ddpmkit.load(tmp_path / "run")
    assert pipe.model.config.out_channels == 2
    assert pipe.generate(n=2, steps=5).shape == (2, 1, 28, 28)


def test_nll_evaluation_of_a_run(tmp_path):
    from ddpmkit.evaluate import evaluate_nll
    Trainer(tmp_path / "run", tiny(steps=2), progress=False).train()
    r = evaluate_nll(tmp_path / "run", n=4, batch_size=2)
    assert r["n"] == 4 and r["dataset"] == "mnist-test"
    assert 0 < r["bits_per_dim"] < 20 and r["decoder_bpd"] > 0


def test_run_files_get_ordinary_permissions(tmp_path):
    import os
    import stat
    Trainer(tmp_path / "run", tiny(steps=1), progress=False).train()
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "model.safetensors", "state.safetensors"):
        mode = stat.S_IMODE((tmp_path / "run" / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))
