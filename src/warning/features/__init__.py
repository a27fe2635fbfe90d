"""Point-in-time household features, declared in ``features/catalogue.yaml``."""

from warning.features.build import build_features, training_cutoffs
from warning.features.catalogue import Catalogue, FeatureSpec, load_catalogue

__all__ = ["Catalogue", "FeatureSpec", "build_features", "load_catalogue", "training_cutoffs"]
