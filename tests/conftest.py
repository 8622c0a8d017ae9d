"""Test setup: Keras 2 before TensorFlow loads, quiet TF logs, fixed seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfrs_negatives  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS=1 before TF loads)
