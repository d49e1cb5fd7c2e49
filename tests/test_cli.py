"""Every user error named in the core issue ends in exactly one line on stderr and loses nothing."""
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from ddpmkit.cli import main

TINY = ["--preset", "micro", "--steps", "2", "--batch-size", "2", "--timesteps", "20", "--no-progress",
        "--sample-every", "100"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--out", str(d), *TINY]) == 0
    return d


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_help_everywhere(capsys):
    for cmd in ([], ["train"], ["sample"], ["evaluate"], ["info"]):
        code, out, _ = run(capsys, *cmd, "--help")
        assert code == 0 and "Usage:" in out


def test_unknown_preset(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--preset", "huge")
    one_error_line(code, err, "unknown preset 'huge'", "mnist-tiny")


def test_unknown_dataset(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--dataset", "imagenet")
    one_error_line(code, err, "unknown dataset 'imagenet'", "folder")


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--dataset", str(tmp_path / "empty"))
    one_error_line(code, err, "no readable image", "0 file(s) skipped")


def test_folder_without_readable_images_reports_what_was_skipped(capsys, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "notes.dat").write_bytes(b"x")
    (d / "broken.png").write_bytes(b"not a png")
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--dataset", str(d))
    one_error_line(code, err, "2 file(s) skipped", "not an image file (.dat)", "unreadable")


def test_size_the_network_cannot_take(capsys, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(d / "a.png")
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--dataset", str(d), "--image-size", "30",
                       "--preset", "mnist-tiny")
    one_error_line(code, err, "image size 30 is not divisible by 4", "--image-size 32")


@pytest.mark.parametrize("flag", ["--steps", "--batch-size", "--lr"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_numbers(capsys, tmp_path, flag, value):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), flag, value)
    one_error_line(code, err, flag, "must be positive")
    assert not (tmp_path / "r").exists()


def test_negative_snr_gamma_is_one_line_and_zero_turns_it_off(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--snr-gamma", "-1")
    one_error_line(code, err, "--snr-gamma", "0 or more")
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--snr-gamma", "0", *TINY)
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["snr_gamma"] is None


def test_negative_first_caption_steps_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--first-caption-steps", "-1")
    one_error_line(code, err, "--first-caption-steps", "0 or more")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flag", [["--text-layers", "1"], ["--text-positions"], ["--no-text-pooled"],
                                  ["--cross-attention", "separate"]])
def test_text_options_without_a_text_encoder_are_one_line(capsys, tmp_path, flag):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), *flag, *TINY)
    one_error_line(code, err, flag[0], "--text-encoder")


def test_text_encoder_layers_that_are_not_numbers_are_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--text-encoder", "all-MiniLM-L6-v2",
                       "--text-encoder-layer", "3,six", *TINY)
    one_error_line(code, err, "--text-encoder-layer", "3,6")
    assert not (tmp_path / "r").exists()


def test_text_encoder_layer_without_a_text_encoder_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--text-encoder-layer", "3", *TINY)
    one_error_line(code, err, "--text-encoder-layer", "--text-encoder")
    assert not (tmp_path / "r").exists()


def test_existing_run_is_never_overwritten(capsys, run_dir):
    before = digest(run_dir)
    code, _, err = run(capsys, "train", "--out", str(run_dir), *TINY)
    one_error_line(code, err, "already exists", "--resume", "--overwrite")
    assert digest(run_dir) == before


def test_overwrite_with_bad_input_keeps_the_old_run(capsys, run_dir):
    before = digest(run_dir)
    for bad in (["--dataset", "imagenet"], ["--preset", "huge"], ["--lr", "nan"]):
        code, _, err = run(capsys, "train", "--out", str(run_dir), *TINY, "--overwrite", *bad)
        assert code == 2, err
    assert digest(run_dir) == before


def test_overwrite_and_resume(capsys, tmp_path):
    d = tmp_path / "r"
    assert main(["train", "--out", str(d), *TINY]) == 0
    assert main(["train", "--out", str(d), *TINY, "--overwrite"]) == 0
    assert main(["train", "--out", str(d), "--resume", "--steps", "3", "--no-progress"]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "info", str(d))
    assert code == 0 and "step 3 of 3" in out


def test_resume_without_a_checkpoint(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "new"), "--resume", *TINY)
    one_error_line(code, err, "nothing to resume")


def test_missing_run_folder(capsys, tmp_path):
    code, _, err = run(capsys, "sample", str(tmp_path / "nope"), "--out", str(tmp_path / "g.png"))
    one_error_line(code, err, "does not exist")


def test_corrupt_checkpoint(capsys, tmp_path, run_dir):
    import shutil
    d = tmp_path / "corrupt"
    shutil.copytree(run_dir, d)
    (d / "ema.safetensors").write_bytes(b"\x00garbage")
    code, _, err = run(capsys, "sample", str(d), "--out", str(tmp_path / "g.png"))
    one_error_line(code, err, "corrupt")


def test_corrupt_config(capsys, tmp_path, run_dir):
    import shutil
    d = tmp_path / "badcfg"
    shutil.copytree(run_dir, d)
    (d / "config.json").write_text("{not json")
    code, _, err = run(capsys, "info", str(d))
    one_error_line(code, err, "not valid JSON")


def test_mismatched_checkpoint(capsys, tmp_path, run_dir):
    import json
    import shutil
    d = tmp_path / "mismatch"
    shutil.copytree(run_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model"]["base_channels"] = 16
    (d / "config.json").write_text(json.dumps(cfg))
    code, _, err = run(capsys, "sample", str(d), "--out", str(tmp_path / "g.png"))
    one_error_line(code, err, "does not match its config.json")


def test_output_folder_not_writable(capsys, tmp_path, run_dir):
    blocker = tmp_path / "afile"
    blocker.write_text("I am a file")
    code, _, err = run(capsys, "sample", str(run_dir), "--out", str(blocker / "grid.png"))
    one_error_line(code, err, "cannot create")
    code, _, err = run(capsys, "train", "--out", str(blocker / "run"), *TINY)
    one_error_line(code, err, "choose a writable --out")


def test_sample_writes_grid_singles_and_the_denoising_figure(capsys, tmp_path, run_dir):
    out = tmp_path / "grid.png"
    code, stdout, err = run(capsys, "sample", str(run_dir), "--n", "4", "--steps", "10", "--out", str(out),
                            "--denoising-grid", str(tmp_path / "steps.png"))
    assert code == 0, err
    assert Image.open(out).size[0] > 28 and len(list((tmp_path / "grid").glob("*.png"))) == 4
    assert Image.open(tmp_path / "steps.png").size[0] > Image.open(out).size[0]


def test_evaluate_nll(capsys, run_dir):
    code, out, err = run(capsys, "evaluate", str(run_dir), "--metric", "nll", "--n", "2", "--json")
    assert code == 0, err
    import json
    r = json.loads(out)
    assert r["n"] == 2 and r["bits_per_dim"] > 0


def test_evaluate_nll_importance_sampled_and_its_refusals(capsys, run_dir):
    code, out, err = run(capsys, "evaluate", str(run_dir), "--metric", "nll", "--n", "2", "--nll-timesteps", "5",
                         "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["method"] == "importance-sampled" and r["timesteps"] == 5 and r["n"] == 2 and r["bits_per_dim"] > 0
    code, out, err = run(capsys, "evaluate", str(run_dir), "--metric", "nll", "--n", "2", "--nll-timesteps", "5")
    assert code == 0 and "importance-sampled, 5 timesteps per image" in out, err
    code, _, err = run(capsys, "evaluate", str(run_dir), "--metric", "nll", "--nll-timesteps", "20")
    one_error_line(code, err, "--nll-timesteps must be between 1 and 19")
    code, _, err = run(capsys, "evaluate", str(run_dir), "--metric", "fid", "--nll-timesteps", "5")
    one_error_line(code, err, "--nll-timesteps", "--metric nll")


@pytest.mark.parametrize("device, fragment", [("tpu9", "not a torch device"), ("cuda:99", "cuda"),
                                              ("meta", "not meta")])
def test_bad_device_is_one_line_and_writes_nothing(capsys, tmp_path, run_dir, device, fragment):
    import torch
    if device == "cuda:99" and not torch.cuda.is_available():
        fragment = "no CUDA GPU"
    out = tmp_path / "grid.png"
    code, _, err = run(capsys, "sample", str(run_dir), "--n", "2", "--steps", "2", "--out", str(out),
                       "--device", device)
    one_error_line(code, err, "--device", fragment)
    assert not out.exists()
    code, _, err = run(capsys, "evaluate", str(run_dir), "--metric", "nll", "--n", "1", "--device", device)
    one_error_line(code, err, "--device", fragment)


def test_device_auto_and_cpu_draw_the_same_images_here(capsys, tmp_path, run_dir):
    """auto is the CPU on a machine without a GPU; with one (the GPU check), cpu and auto must still agree closely,
    since the starting noise is drawn on the CPU either way."""
    grids = {}
    for device in ("cpu", "auto"):
        out = tmp_path / f"{device}.png"
        code, _, err = run(capsys, "sample", str(run_dir), "--n", "2", "--steps", "5", "--sampler", "ddim",
                           "--out", str(out), "--device", device)
        assert code == 0, err
        grids[device] = np.asarray(Image.open(out), dtype=np.int16)
    assert np.abs(grids["cpu"] - grids["auto"]).max() <= 2
