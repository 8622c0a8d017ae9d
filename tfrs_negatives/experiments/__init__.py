"""Experiments: data, the tutorial's two towers, named strategies, training and reports.

The machinery behind `tfrs-negatives compare` and the MovieLens examples: the examples'
shared flags, split, tables and JSON are in `harness`; the hard-negatives protocol in
`hard_negatives` (runs, tasks, flags, content towers) and `mined_runs` (refresh and
report of mined tables).
"""

from tfrs_negatives.experiments.datasets import Interactions, load_interactions
from tfrs_negatives.experiments.model import (
    TwoTowerModel,
    build,
    set_tower_weights,
    tower_weights,
)
from tfrs_negatives.experiments.splits import Split, split_interactions, training_batches
from tfrs_negatives.experiments.strategies import (
    STRATEGIES,
    Strategy,
    StrategyOptions,
    make_strategy,
    parse_mix,
    warmup_schedule,
)
from tfrs_negatives.experiments.synthetic import SyntheticConfig, synthetic_interactions
from tfrs_negatives.experiments.training import RunResult, TrainingOptions, train_and_evaluate

__all__ = [
    "Interactions",
    "RunResult",
    "STRATEGIES",
    "Split",
    "Strategy",
    "StrategyOptions",
    "SyntheticConfig",
    "TrainingOptions",
    "TwoTowerModel",
    "build",
    "load_interactions",
    "make_strategy",
    "parse_mix",
    "set_tower_weights",
    "split_interactions",
    "synthetic_interactions",
    "tower_weights",
    "train_and_evaluate",
    "training_batches",
    "warmup_schedule",
]
