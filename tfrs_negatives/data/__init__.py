"""Datasets: MovieLens from tfds or from a local copy of the GroupLens files; head-item
down-sampling of training examples (word2vec sub-sampling)."""

from tfrs_negatives.data.downsampling import downsample_positives, keep_probability
from tfrs_negatives.data.movielens import (
    SUPPORTED_CONFIGS,
    load_movielens,
    load_movielens_local,
)

__all__ = [
    "SUPPORTED_CONFIGS",
    "downsample_positives",
    "keep_probability",
    "load_movielens",
    "load_movielens_local",
]
