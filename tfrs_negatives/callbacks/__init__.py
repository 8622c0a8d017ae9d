"""Keras callbacks: curriculum schedules of the negative sources, hard-negative refresh."""

from tfrs_negatives.callbacks.curriculum import NegativeCurriculum, interpolate
from tfrs_negatives.callbacks.refresh import RefreshHardNegatives, positives_by_anchor

__all__ = ["NegativeCurriculum", "RefreshHardNegatives", "interpolate", "positives_by_anchor"]
