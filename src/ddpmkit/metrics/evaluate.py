"""One call from images to paper metrics: FID, KID and improved precision/recall against a reference set."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from . import inception
from .features import FeatureName, check_images, extract_features, feature_fingerprint, reference_features
from .frechet import fid_from_features, frechet_distance, gaussian_stats
from .kid import kid_from_features
from .precision_recall import precision_recall

METRICS = ("fid", "kid", "pr")


def evaluate_images(images: torch.Tensor, reference: str | torch.Tensor = "mnist-test",
                    metrics: Iterable[str] = METRICS, feature: FeatureName = "mnist",
                    inception_weights: str | Path | None = None, *, kid_subsets: int = 100,
                    kid_subset_size: int = 1000, k: int = 3, generator: torch.Generator | None = None,
                    cache: str | Path | None = None, batch_size: int | None = None,
                    device: str | torch.device = "cpu") -> dict:
    """Compare generated ``images`` [N, C, H, W] in [-1, 1] with a reference set in one feature space.

    reference: "mnist-test" (1,000 held-out digits), "mnist-train" (9,000 digits) — features cached on disk — or a
        tensor of reference images in [-1, 1].
    metrics: any of "fid", "kid", "pr".
    feature: "mnist" (shipped classifier, offline) or "inception" (needs ``inception_weights``, a local file).
    KID uses subsets of min(kid_subset_size, N, N_ref) samples, drawn with ``generator`` (default: seeded with 0, so
    repeated calls agree). Returns a dict of floats plus what was used ("n", "n_reference", "feature", ...).
    """
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metric(s) {unknown or metrics}; choose from {', '.join(METRICS)}")
    if feature == "inception":
        inception.check_weights_path(inception_weights)   # fail before any work
    fingerprint = feature_fingerprint(feature, inception_weights)
    images = check_images(images)

    if isinstance(reference, str):
        ref = reference_features(reference, feature, inception_weights, cache, device)
        ref_feats, ref_mu, ref_sigma = ref["features"], ref["mu"], ref["sigma"]
        ref_name = reference
    else:
        ref_feats = extract_features(check_images(reference), feature, inception_weights, batch_size, device)
        ref_mu, ref_sigma = gaussian_stats(ref_feats)
        ref_name = "tensor"
    feats = extract_features(images, feature, inception_weights, batch_size, device)

    out: dict = {"feature": feature, "feature_fingerprint": fingerprint, "reference": ref_name,
                 "n": len(feats), "n_reference": len(ref_feats)}
    if feature == "inception":
        out["standard_inception_weights"] = fingerprint.startswith(inception.STANDARD_SHA256_PREFIX)
    if "fid" in metrics:
        if min(len(feats), len(ref_feats)) < feats.shape[1]:   # rank-deficient: the [N, M] route is exact and cheap
            out["fid"] = fid_from_features(feats, ref_feats)
        else:
            out["fid"] = frechet_distance(*gaussian_stats(feats), ref_mu, ref_sigma)
    if "kid" in metrics:
        size = min(kid_subset_size, len(feats), len(ref_feats))
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        kid = kid_from_features(ref_feats, feats, subsets=kid_subsets, subset_size=size, generator=gen)
        out.update(kid_mean=kid.mean, kid_std=kid.std, kid_subsets=kid_subsets, kid_subset_size=size)
    if "pr" in metrics:
        pr = precision_recall(ref_feats, feats, k=k)
        out.update(precision=pr.precision, recall=pr.recall, k=k)
    return out
