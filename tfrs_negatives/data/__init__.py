"""Datasets: MovieLens from tfds or from a local copy of the GroupLens files (ml-100k,
ml-1m or a CSV release, told from the files); head-item down-sampling of training
examples (word2vec sub-sampling); each example's mined negatives as a feature."""

from tfrs_negatives.data.downsampling import downsample_positives, keep_probability
from tfrs_negatives.data.mined import with_mined_negatives
from tfrs_negatives.data.movielens import load_movielens, load_movielens_local
from tfrs_negatives.data.movielens_release import (
    SUPPORTED_CONFIGS,
    TFDS_CONFIGS,
    detect_release,
)

__all__ = [
    "SUPPORTED_CONFIGS",
    "TFDS_CONFIGS",
    "detect_release",
    "downsample_positives",
    "keep_probability",
    "load_movielens",
    "load_movielens_local",
    "with_mined_negatives",
]
