"""Sampling-probability estimators: streaming, exact counts, static table."""

from tfrs_negatives.estimators.base import SamplingProbabilityEstimator
from tfrs_negatives.estimators.streaming import StreamingFrequencyEstimator
from tfrs_negatives.estimators.tables import ExactFrequencyEstimator, StaticProbabilities

__all__ = [
    "ExactFrequencyEstimator",
    "SamplingProbabilityEstimator",
    "StaticProbabilities",
    "StreamingFrequencyEstimator",
]
