"""Writes the peer benchmarks' results: one JSON file (a section per benchmark) and its Markdown rendering.

Full runs update ``benchmarks/results/peers.json`` and the peers block of ``benchmarks/RESULTS.md``; ``--quick``
smoke runs go to ``runs/benchmarks-quick/`` (git-ignored), so smoke numbers never sit beside real ones.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = {"training_throughput": "(a) Training throughput",
         "work_per_image": "(a′) Work per training image, and the compute rate behind (a)",
         "memory_format": "(a″) ddpmkit's training step in the channels-last memory layout",
         "step_profile": "(a‴) Where ddpmkit's training step spends its time, and what fusing could bound",
         "sampling_throughput": "(b) Sampling throughput",
         "quality_per_minute": "(c) Quality per CPU-minute", "peak_rss": "(d) Peak memory of a training step",
         "training_throughput_cuda": "(a, GPU) Training throughput on one GPU",
         "sampling_throughput_cuda": "(b, GPU) Sampling throughput on one GPU",
         "peak_rss_cuda": "(d, GPU) Peak GPU memory of a training step"}
BEGIN, END = "<!-- peers:begin (written by benchmarks/report.py) -->", "<!-- peers:end -->"


def paths(quick: bool) -> tuple[Path, Path]:
    if quick:
        d = ROOT / "runs" / "benchmarks-quick"
        return d / "peers_quick.json", d / "RESULTS_quick.md"
    return ROOT / "benchmarks" / "results" / "peers.json", ROOT / "benchmarks" / "RESULTS.md"


def command_line() -> str:
    """The command that produced this run, as typed from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def timed_train(cmd: list[str]) -> dict:
    """Run a ``ddpmkit train`` command from the repository root; its command line, wall time and commit."""
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return {"command": " ".join(cmd), "wall_time_s": round(time.time() - t0, 1), "commit": commit()}


def commit() -> str:
    """The short commit of the checkout, or $DDPMKIT_COMMIT where there is no git (a copy on another machine)."""
    if os.environ.get("DDPMKIT_COMMIT"):
        return os.environ["DDPMKIT_COMMIT"]
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() + ("+dirty-src" if dirty.stdout.strip() else "")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_section(key: str, quick: bool) -> dict | None:
    """One stored section of the results file, or None where it has not been measured."""
    json_path, _ = paths(quick)
    if not json_path.exists():
        return None
    return json.loads(json_path.read_text())["sections"].get(key)


def update(key: str, section: dict, quick: bool) -> Path:
    """Store one benchmark's section (columns, rows, notes, data, machine, versions, command) and re-render."""
    if key not in ORDER:
        raise ValueError(f"unknown section {key!r}")
    json_path, md_path = paths(quick)
    doc = json.loads(json_path.read_text()) if json_path.exists() else {"quick": quick, "sections": {}}
    doc["sections"][key] = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit(), **section}
    _atomic_write(json_path, json.dumps(doc, indent=2) + "\n")
    block = render(doc)
    old = md_path.read_text() if md_path.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (old.rstrip() + "\n\n" if old else "# Benchmark results\n\n") + block + "\n"
    _atomic_write(md_path, text)
    return md_path


def _cell(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def render(doc: dict) -> str:
    out = [BEGIN, ""]
    if doc.get("quick"):
        out += ["> **SMOKE RUN (`--quick`)**: a few steps to prove the scripts work. These are not measurements.", ""]
    out += ["## ddpmkit vs diffusers vs denoising-diffusion-pytorch", "",
            "Peers are the optional `[bench]` extra. Ratios are medians measured side by side in one run on one "
            "machine.",
            ""]
    for key, title in ORDER.items():
        s = doc["sections"].get(key)
        if s is None:
            continue
        out += [f"### {title}", ""]
        out.append("| " + " | ".join(s["columns"]) + " |")
        out.append("|" + "|".join("---" for _ in s["columns"]) + "|")
        out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in s["rows"]]
        m, v = s["machine"], s["versions"]
        gpu = f"GPU {m['gpu']}, " if m.get("gpu") else ""
        out += ["", f"- Machine: {gpu}{m['cpu']}, {m['logical_cores']} logical cores, torch threads "
                    f"{m['torch_threads']}, {m['platform']}, Python {m['python']}",
                "- Versions: " + ", ".join(f"{k} {val or 'not installed'}" for k, val in v.items()),
                f"- Command (every figure in this table): `{s['command']}`",
                f"- Date {s['date']}, commit {s['commit']}"]
        out += [f"- {note}" for note in s.get("notes", [])]
        out.append("")
    out.append(END)
    return "\n".join(out)
