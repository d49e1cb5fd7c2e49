"""What size does a shapes model draw for a size word it may not know, and for none at all?

For each word (trained, from a spent held-out set, a nonsense word, or no word), the run draws single objects
("a WORD red circle on the left", ...) at each guidance scale and the detector says which come out small. A word the
model does not read behaves like no word; guidance moves that default (it draws unsized objects large at w = 3), so
plain held-out size accuracy can look good for large-words that are never read.

    python benchmarks/size_default.py runs/shapes-words6 --guidance 1 3 --out benchmarks/results/size_default.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from report import commit

# trained (TRAIN), spent held-out sets' words (sets 6 and 8), a made-up word, and no word at all
WORDS = ["", "small", "large", "wee", "puny", "compact", "colossal", "immense", "zorby"]
PROMPTS = ["a {}red circle on the left", "a {}red square on the right", "a {}red triangle at the top"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0])
    ap.add_argument("--words", nargs="+", default=WORDS, help="'' for no size word")
    ap.add_argument("--n", type=int, default=16, help="images per prompt (three prompts per word)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from ddpmkit.pipeline import Pipeline
    from ddpmkit.shapes.detect import detect

    pipe = Pipeline.load(args.run)
    t0 = time.time()
    result = {"run": str(args.run), "n_per_word": args.n * len(PROMPTS), "prompts": PROMPTS, "commit": commit(),
              "small_share": {}}
    for w in args.guidance:
        shares = {}
        for word in args.words:
            small = drawn = 0
            for template in PROMPTS:
                for image in pipe(template.format(f"{word} " if word else ""), n=args.n, guidance=w, seed=0):
                    objects = detect(image)
                    if objects:                       # the largest object found is the one judged
                        drawn += 1
                        small += objects[0]["size"] == "small"
            shares[word or "(none)"] = round(small / drawn, 3) if drawn else None
            print(w, word or "(none)", shares[word or "(none)"], flush=True)
        result["small_share"][str(w)] = shares
    result["seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
