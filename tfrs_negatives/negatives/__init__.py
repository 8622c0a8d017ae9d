"""Negative sources: in-batch, uniform, popularity^b, the full catalogue."""

from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.negatives.sources import (
    FullCatalogue,
    InBatch,
    NegativeSource,
    Popularity,
    Uniform,
)

__all__ = ["Catalogue", "FullCatalogue", "InBatch", "NegativeSource", "Popularity", "Uniform"]
