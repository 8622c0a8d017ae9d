"""Negative sources: in-batch, uniform, popularity^b, the full catalogue, mined (from a
table in the model, or from each example's features), a cross-batch memory,
a cache of the catalogue's embeddings, dynamic negatives chosen among scored candidates.

Also the in-graph state the mined source reads (`HardNegativeTable`,
`KnownPositives`), re-exported from `tfrs_negatives.mining`.
"""

from tfrs_negatives.negatives.cache import Cache
from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.negatives.cross_batch import CrossBatch
from tfrs_negatives.negatives.dynamic import Dynamic
from tfrs_negatives.negatives.from_features import FromFeatures
from tfrs_negatives.negatives.hard_negative_table import HardNegativeTable
from tfrs_negatives.negatives.known_positives import KnownPositives
from tfrs_negatives.negatives.mined import Mined
from tfrs_negatives.negatives.sources import (
    FullCatalogue,
    InBatch,
    NegativeSource,
    Popularity,
    Uniform,
)

__all__ = [
    "Cache",
    "Catalogue",
    "CrossBatch",
    "Dynamic",
    "FromFeatures",
    "FullCatalogue",
    "HardNegativeTable",
    "InBatch",
    "KnownPositives",
    "Mined",
    "NegativeSource",
    "Popularity",
    "Uniform",
]
