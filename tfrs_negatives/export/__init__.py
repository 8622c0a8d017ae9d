"""Export a trained two-tower model for serving: query tower + exact or ScaNN top-k index.

`save_retrieval` writes a SavedModel whose `serving_default` signature maps raw query
features to the top-k candidate ids and scores; `load_retrieval` loads one, registering
ScaNN's ops first when the model needs them; `save_tower` writes one tower whose
`serving_default` maps raw features to `{"embedding": [B, D]}` (for `tfrs-negatives embed`);
`python -m tfrs_negatives.export.query PATH --queries ...` prints an export's top-k
for a few queries.
"""

from tfrs_negatives.export.loading import (
    IncompleteExportError,
    load_retrieval,
    missing_weights,
    needs_scann,
)
from tfrs_negatives.export.retrieval import (
    EMPTY_INT_ID,
    EMPTY_SCORE,
    EMPTY_STRING_ID,
    EXCLUDE_INPUT,
    QUERY_INPUT,
    save_retrieval,
)
from tfrs_negatives.export.tower import EMBEDDING_OUTPUT, save_tower
from tfrs_negatives.scann_config import SCANN_OPTIONS

__all__ = [
    "EMBEDDING_OUTPUT",
    "EMPTY_INT_ID",
    "EMPTY_SCORE",
    "EMPTY_STRING_ID",
    "EXCLUDE_INPUT",
    "QUERY_INPUT",
    "IncompleteExportError",
    "SCANN_OPTIONS",
    "load_retrieval",
    "missing_weights",
    "needs_scann",
    "save_retrieval",
    "save_tower",
]
