"""Keras callbacks: curriculum schedules of the negative sources."""

from tfrs_negatives.callbacks.curriculum import NegativeCurriculum, interpolate

__all__ = ["NegativeCurriculum", "interpolate"]
