"""Negative sources: in-batch, uniform, popularity^b, the full catalogue, mined."""

from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.negatives.mined import Mined
from tfrs_negatives.negatives.sources import (
    FullCatalogue,
    InBatch,
    NegativeSource,
    Popularity,
    Uniform,
)

__all__ = [
    "Catalogue",
    "FullCatalogue",
    "InBatch",
    "Mined",
    "NegativeSource",
    "Popularity",
    "Uniform",
]
