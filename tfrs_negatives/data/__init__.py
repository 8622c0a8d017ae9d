"""Datasets: MovieLens from tfds or from a local copy of the GroupLens files."""

from tfrs_negatives.data.movielens import (
    SUPPORTED_CONFIGS,
    load_movielens,
    load_movielens_local,
)

__all__ = ["SUPPORTED_CONFIGS", "load_movielens", "load_movielens_local"]
