"""Why the training throughput ratios are what they are: the work each toolkit's matched network does per image.

For each setting of ``benchmarks/throughput.py`` and each toolkit, one training step's loss forward and backward is
run under ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, linear layers, matrix products and attention,
the operations that dominate; normalisation and activations are not counted), giving GFLOP per training image. The
images/s of the training-throughput section already in ``benchmarks/results/peers.json`` (not re-timed here) times
that work is the compute rate each toolkit reaches: equal rates mean an images/s gap is a gap in work, not in
implementation. Nothing here is timed; it takes a few seconds.

    python benchmarks/work.py
"""
from __future__ import annotations

import json
import statistics

import torch
from torch.utils.flop_counter import FlopCounterMode

import peers
import report  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def training_flops_per_image(toolkit: str, setting: str, batch: int = 2) -> float:
    """FLOPs of one ε-MSE training step (loss forward + backward, fp32) per image, through the toolkit's own loss."""
    torch.manual_seed(0)
    s = peers.SETTINGS[setting]
    net = peers.build(toolkit, setting).train()
    loss_fn = peers.eps_loss_fn(toolkit, net, setting)
    shape = (batch, s["channels"], s["size"], s["size"])
    x0, noise = torch.rand(shape) * 2 - 1, torch.randn(shape)
    t = torch.full((batch,), peers.T // 2, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        loss_fn(x0, t, noise).backward()
    return counter.get_total_flops() / batch


def main() -> None:
    timed = report.load_section("training_throughput", False)
    if timed is None:
        raise SystemExit("no training-throughput section in benchmarks/results/peers.json: run "
                         "python benchmarks/throughput.py --only train first")
    toolkits = peers.available()
    rows, data = [], {}
    cols = ["Figure", *(peers.NAMES[tk] for tk in peers.TOOLKITS), "ddpmkit ÷ diffusers",
            "ddpmkit ÷ denoising-diffusion-pytorch"]

    def row(label, vals):
        ratios = [vals["ddpmkit"] / vals[k] if vals.get(k) else None for k in ("diffusers", "ddp")]
        rows.append([label, *(vals.get(tk) for tk in peers.TOOLKITS), *ratios])

    for setting, measured in timed["data"].items():
        gflop = {tk: training_flops_per_image(tk, setting) / 1e9 for tk in toolkits}
        row(f"GFLOP per training image (forward + backward), {setting}", gflop)
        data[setting] = {"gflop_per_training_image": gflop, "batch": measured["batch"]}
        for precision in ("fp32", "bf16"):
            ips = {tk: measured["images_per_s"].get(f"{tk}/{precision}") for tk in toolkits}
            if any(v is None for v in ips.values()):
                continue
            rate = {tk: statistics.median(ips[tk]) * gflop[tk] for tk in toolkits}   # (a)'s medians
            row(f"achieved GFLOP/s in training, {setting}, batch {measured['batch']}, {precision}", rate)
            data[setting][f"gflop_per_s/{precision}"] = rate
        print(setting + ": " + json.dumps(data[setting]), flush=True)
    notes = ["GFLOP: torch.utils.flop_counter.FlopCounterMode over one training step's loss forward and backward "
             "(convolutions, linear layers, matrix products, attention; not normalisation or activations), "
             "per image, fp32, each toolkit's own loss code; the networks are those of (a).",
             f"Achieved GFLOP/s = the images/s of (a) (measured {timed['date']} at commit {timed['commit']}, "
             "not re-timed here) × GFLOP per image. In the GFLOP row a ratio below 1 means ddpmkit does less work "
             "per image; in the GFLOP/s rows a ratio near 1 means the images/s gap of (a) is a gap in work.",
             "ddpmkit's nearest-×2-then-3×3 upsampling runs as four 2×2 sub-pixel convolutions (16/36 of the "
             "multiply-adds), the only place its work differs from diffusers' at the same layout."]
    section = {"columns": cols, "rows": rows, "notes": notes, "data": data, "machine": timed["machine"],
               "versions": timed["versions"], "command": report.command_line()}   # the machine that timed (a)
    print(f"wrote {report.update('work_per_image', section, False)}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
