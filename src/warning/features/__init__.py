"""Point-in-time household features, declared in ``features/catalogue.yaml``."""

from warning.features.build import build_features, training_cutoffs
from warning.features.catalogue import Catalogue, FeatureSpec, catalogue_of, load_catalogue

__all__ = ["Catalogue", "FeatureSpec", "build_features", "catalogue_of", "load_catalogue", "training_cutoffs"]
