"""Measure like the papers: FID, KID and improved precision/recall on feature sets [N, D]."""
from .classifier import ClassifierConfig, MNISTClassifier, load_mnist_classifier
from .frechet import fid_from_features, frechet_distance, gaussian_stats
from .kid import KID, kid_from_features, mmd2_unbiased, polynomial_kernel
from .precision_recall import PrecisionRecall, knn_radii, precision_recall

__all__ = [
    "fid_from_features", "frechet_distance", "gaussian_stats",
    "kid_from_features", "mmd2_unbiased", "polynomial_kernel", "KID",
    "precision_recall", "knn_radii", "PrecisionRecall",
    "MNISTClassifier", "ClassifierConfig", "load_mnist_classifier",
]
