"""Measure like the papers: FID, KID and improved precision/recall, on MNIST-classifier or Inception-v3 features.

    from ddpmkit.metrics import evaluate_images
    evaluate_images(samples)                         # domain metrics vs the 1,000 held-out digits, offline
    evaluate_images(samples, feature="inception", inception_weights="pt_inception-2015-12-05-6726825d.pth")

Feature-level functions (``fid_from_features``, ``kid_from_features``, ``precision_recall``) work on any [N, D] features.
"""
from .classifier import ClassifierConfig, MNISTClassifier, load_mnist_classifier
from .evaluate import METRICS, evaluate_images
from .features import (REFERENCES, cache_dir, domain_features, extract_features, feature_fingerprint,
                       reference_features)
from .frechet import fid_from_features, frechet_distance, gaussian_stats
from .inception import InceptionWeightsError, inception_features, load_inception
from .kid import KID, kid_from_features, mmd2_unbiased, polynomial_kernel
from .precision_recall import PrecisionRecall, knn_radii, precision_recall

__all__ = [
    "evaluate_images", "METRICS", "REFERENCES",
    "fid_from_features", "frechet_distance", "gaussian_stats",
    "kid_from_features", "mmd2_unbiased", "polynomial_kernel", "KID",
    "precision_recall", "knn_radii", "PrecisionRecall",
    "domain_features", "extract_features", "reference_features", "feature_fingerprint", "cache_dir",
    "inception_features", "load_inception", "InceptionWeightsError",
    "MNISTClassifier", "ClassifierConfig", "load_mnist_classifier",
]
