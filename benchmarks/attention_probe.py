"""Does the U-Net look at a word it was never trained on? The share of cross-attention each size (or relation) word gets.

For every size word of the training wordings and of the held-out sets, caption 18 scenes "a {word} {colour} {shape}
on the left" (every colour and shape), noise real shapes images to t = 200, 500 and 800, run the trained U-Net (EMA
weights) and record, at every cross-attention block, the share of each pixel's attention that falls on the word's
tokens, averaged over pixels, scenes and the three t. The block where the training words get the most attention is
the one that reads the attribute; its figure is the word's ``share``. With ``--attribute relation`` the captions are
"a {colour} {shape} {phrase} a {colour} {shape}" and the tokens are the relation phrase's.

A linear probe reads every held-out size word from the frozen states at 90-100% (relation_probe.py --attribute
size), yet the README model draws set 6's sizes no better than by ignoring the word. This probe shows where the word
is lost: the cross-attention's keys, learned on a few words, hardly attend to an unseen one.

    python benchmarks/attention_probe.py runs/shapes-words6 runs/s18/kr16-s1 runs/s18/kr16-s0 runs/s18/td2-s0 \
        runs/s18/td2-s1 --sets 1 2 3 4 5 6 --name attention_probe_size     # ~1 min a run on 2 cores

Session 18 (results/attention_probe_size.json): on the README model trained size words get 28-74% of the
size-reading block's attention, unseen small-words 2-9%; --text-key-rank 16 raised set 6's words from 12% to 22-28%
without making them read. ``python benchmarks/attention_probe.py runs/shapes-words6 --attribute relation --sets 1 2 3 4 5 6``
(results/attention_probe_relation.json): held-out relation phrases get 30-42% against 44%.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from text_probe import save  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

TIMES = (200, 500, 800)


def words_by_family(attribute: str, sets: list[int]) -> list[tuple[str, str, str]]:
    """(family, meaning, phrase) for the training wordings and each held-out set."""
    from ddpmkit.shapes.captions import HELD_OUT_SETS, PARAPHRASE, TRAIN
    key = "size" if attribute == "size" else "rel"
    out = []
    for family, table in [("train", TRAIN), ("train", PARAPHRASE)] + [(f"set {n}", HELD_OUT_SETS[n]) for n in sets]:
        for meaning, phrases in table[key].items():
            out += [(family, meaning, p) for p in phrases if (family, meaning, p) not in out]
    return out


def captions_for(attribute: str, phrase: str) -> tuple[list[str], list[tuple[int, int]]]:
    """18 captions holding ``phrase`` and the phrase's character span in each."""
    from ddpmkit.shapes.scene import COLORS, SHAPES
    caps, spans = [], []
    for i, colour in enumerate(COLORS):
        for j, shape in enumerate(SHAPES):
            if attribute == "size":
                head = "a "
                tail = f" {colour} {shape} on the left"
            else:
                head = f"a {colour} {shape} "
                tail = f" a {COLORS[(i + 1) % len(COLORS)]} {SHAPES[(j + 1) % len(SHAPES)]}"
            caps.append(head + phrase + tail)
            spans.append((len(head), len(head) + len(phrase)))
    return caps, spans


def attention_shares(pipe, caps: list[str], spans: list[tuple[int, int]], images: torch.Tensor) -> np.ndarray:
    """Mean share [blocks] of cross-attention on the tokens inside ``spans``."""
    from ddpmkit.nn.layers import CrossAttention, context_keys_values
    net = pipe.model.eval()
    blocks = [m for m in net.modules() if isinstance(m, CrossAttention)]
    if not blocks:
        raise SystemExit(f"{pipe.run_dir}: the probe reads separate cross-attention (--cross-attention separate)")
    tok = pipe.encoder._backend.tokenizer
    offsets = tok(caps, return_offsets_mapping=True)["offset_mapping"]
    cond = pipe.encoder(caps)
    inside = torch.zeros(cond.mask.shape)
    for b, (offs, (s, e)) in enumerate(zip(offsets, spans)):
        for i, (a, z) in enumerate(offs):
            inside[b, i] = float(z > a and a >= s and z <= e)
    got = {}

    def hook(index):
        def record(mod, args, _out):
            x, context, mask = args[0], args[1], args[2]
            n, c, h, w = x.shape
            q = mod.q(mod.norm(x)).reshape(n, mod.heads, c // mod.heads, h * w).transpose(-1, -2)
            k, _ = context_keys_values(mod.kv, context, n, mod.heads, c // mod.heads)
            logits = (q @ k.transpose(-1, -2)) / (c // mod.heads) ** 0.5
            att = logits.masked_fill(~mask.bool()[:, None, None, :], float("-inf")).softmax(-1)   # [N, heads, HW, L]
            got[index] = (att * inside[:, None, None, :]).sum(-1).mean().item()
        return record

    handles = [blk.register_forward_hook(hook(i)) for i, blk in enumerate(blocks)]
    sched = pipe.denoiser.schedule
    shares = []
    try:
        for t in TIMES:
            tt = torch.full((len(caps),), t)
            ab = sched.alphas_cumprod[t].float()
            noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(t))
            x_t = ab.sqrt() * images + (1 - ab).sqrt() * noise
            with torch.inference_mode():
                net(x_t, tt, cond)
            shares.append([got[i] for i in range(len(blocks))])
    finally:
        for hd in handles:
            hd.remove()
    return np.mean(shares, axis=0)


def main() -> None:
    from ddpmkit.shapes.captions import HELD_OUT_SETS
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path, help="shapes text runs trained with --cross-attention separate")
    ap.add_argument("--attribute", choices=["size", "relation"], default="size")
    ap.add_argument("--sets", type=int, nargs="+", default=sorted(HELD_OUT_SETS), choices=sorted(HELD_OUT_SETS))
    ap.add_argument("--name", default=None, help="results/NAME.json [default: attention_probe_ATTRIBUTE]")
    args = ap.parse_args()

    from ddpmkit.pipeline import Pipeline
    from ddpmkit.shapes import ShapesDataset
    torch.set_grad_enabled(False)
    ds = ShapesDataset(seed=0)
    images = torch.stack([torch.as_tensor(ds[i][0]) for i in range(18)]).float()
    rows = []
    for run in args.runs:
        pipe = Pipeline.load(run)
        per_word = []
        for family, meaning, phrase in words_by_family(args.attribute, args.sets):
            per_word.append((family, meaning, phrase, attention_shares(pipe, *captions_for(args.attribute, phrase),
                                                                       images)))
        train = np.mean([s for f, _, _, s in per_word if f == "train"], axis=0)
        reading = int(np.argmax(train))
        for family, meaning, phrase, s in per_word:
            rows.append({"run": str(run), "key_rank": pipe.config.model.text_key_rank, "family": family,
                         "meaning": meaning, "phrase": phrase, "share": round(float(s[reading]), 4),
                         "reading_block": reading, "shares": [round(float(v), 4) for v in s]})
        summary = {f: round(float(np.mean([r["share"] for r in rows if r["run"] == str(run) and r["family"] == f])), 3)
                   for f in dict.fromkeys(r["family"] for r in rows if r["run"] == str(run))}
        print(run, f"reading block {reading}", summary, flush=True)
    what = (f"share of cross-attention on each {args.attribute} word's tokens (EMA weights; mean over 18 captions, "
            f"pixels and t in {TIMES}), at the block where the training words get the most")
    save(args.name or f"attention_probe_{args.attribute}", what, {"images": "ShapesDataset(seed=0)[0:18]",
                                                                  "times": list(TIMES)}, rows)


if __name__ == "__main__":
    main()
