"""Metrics for TFRS retrieval models: recall by item popularity, and negative diagnostics."""

from tfrs_negatives.metrics.negative_diagnostics import (
    NegativeDiagnostics,
    negative_diagnostics_from_logs,
)
from tfrs_negatives.metrics.stratified_recall import PopularityStratifiedRecall
from tfrs_negatives.popularity import BUCKET_PRESETS, popularity_buckets, resolve_buckets

__all__ = [
    "BUCKET_PRESETS",
    "NegativeDiagnostics",
    "PopularityStratifiedRecall",
    "negative_diagnostics_from_logs",
    "popularity_buckets",
    "resolve_buckets",
]
