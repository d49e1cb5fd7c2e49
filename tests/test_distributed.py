"""Training on several processes through Accelerate, as on many GPUs: here two CPU processes (gloo). A multi-GPU run
is ``accelerate launch --multi_gpu --num_processes N -m ddpmkit train ...``; on CPUs Accelerate's own launcher starts
one process, so two are started by torchrun with ACCELERATE_USE_CPU (Accelerate's MULTI_CPU)."""
import csv
import os
import subprocess
import sys

import pytest
import torch

from ddpmkit.cli import main

MICRO = ["--preset", "micro", "--batch-size", "2", "--timesteps", "20", "--no-progress", "--sample-every", "100",
         "--precision", "fp32"]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "ddpmkit", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def rows(run):
    with open(run / "logs" / "loss.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_processes_train_resume_and_sample(tmp_path, capsys):
    run = tmp_path / "run"
    r = launch("train", "--out", str(run), "--steps", "4", *MICRO)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes" in r.stdout, r.stdout[-2000:]
    assert [int(x["step"]) for x in rows(run)] == [4], "one log, written by the main process only"
    r = launch("train", "--out", str(run), "--resume", "--steps", "6", *MICRO)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [int(x["step"]) for x in rows(run)] == [4, 6]
    from safetensors import safe_open
    with safe_open(str(run / "model.safetensors"), "pt") as f:
        assert f.metadata()["step"] == "6"
        assert all(torch.isfinite(f.get_tensor(k)).all() for k in f.keys())
    assert main(["sample", str(run), "--n", "2", "--steps", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").exists()
