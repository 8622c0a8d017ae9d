"""Evaluation metrics for TFRS retrieval models: recall split by item popularity."""

from tfrs_negatives.metrics.stratified_recall import (
    BUCKET_PRESETS,
    PopularityStratifiedRecall,
    popularity_buckets,
    resolve_buckets,
)

__all__ = [
    "BUCKET_PRESETS",
    "PopularityStratifiedRecall",
    "popularity_buckets",
    "resolve_buckets",
]
