"""tfrs_negatives: which negatives to train a TFRS two-tower retrieval model with.

Importing this package sets `TF_USE_LEGACY_KERAS=1` (TFRS needs Keras 2) when
TensorFlow is not loaded yet, and raises a clear ImportError when TensorFlow was
already loaded with Keras 3. In the package's own commands (`tfrs-negatives`,
`python -m tfrs_negatives ...`, `python -m tfrs_negatives.export.query`) it also sets
`TF_CPP_MIN_LOG_LEVEL=2` when unset, so TensorFlow's start-up lines stay out.
"""

from tfrs_negatives._keras_env import ensure_legacy_keras
from tfrs_negatives._native_logs import quiet_tensorflow_for_commands

quiet_tensorflow_for_commands()  # the package's commands only: TF_CPP_MIN_LOG_LEVEL=2 if unset
ensure_legacy_keras()

# pylint: disable=wrong-import-position
from tfrs_negatives import (  # noqa: E402
    callbacks,
    data,
    estimators,
    export,
    metrics,
    mining,
    negatives,
    ops,
    ranking,
    tasks,
    towers,
)
from tfrs_negatives.estimators import (  # noqa: E402
    ExactFrequencyEstimator,
    SamplingProbabilityEstimator,
    StaticProbabilities,
    StreamingFrequencyEstimator,
)
from tfrs_negatives.tasks import CorrectedRetrieval  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CorrectedRetrieval",
    "ExactFrequencyEstimator",
    "SamplingProbabilityEstimator",
    "StaticProbabilities",
    "StreamingFrequencyEstimator",
    "callbacks",
    "data",
    "estimators",
    "export",
    "metrics",
    "mining",
    "negatives",
    "ops",
    "ranking",
    "tasks",
    "towers",
]
