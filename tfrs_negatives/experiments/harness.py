"""The MovieLens examples' shared harness: flags, split, runs from one start, tables, JSON.

Every example in `examples/` follows the TFRS retrieval tutorial's protocol (ratings as
(user_id, movie_title) pairs, an 80/20 random split, `StringLookup` + `Embedding`
towers, Adagrad, exact test recall over every title) and trains several tasks side by
side. What they share lives here, so that each example holds only its tasks and loop:

    parser = argparse.ArgumentParser()
    add_common_flags(parser, STRATEGIES)
    args = parser.parse_args(argv)
    strategies = chosen_strategies(parser, args, STRATEGIES)
    ks = parse_ks(args)
    replicas = prepare_distribution(args, parser)  # --distribution, before any TF op
    source, split = prepare_split(args, parser, ks)
    with distribution.scope(replicas):
        ...                              # one model per strategy, trained by fit_timed
    print_table(results, ks)
"""

import argparse
import json
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from tfrs_negatives.data import load_movielens
from tfrs_negatives.evaluation import recall_at_k
from tfrs_negatives.experiments import distribution
from tfrs_negatives.experiments.datasets import rating_pairs
from tfrs_negatives.experiments.model import TwoTowerModel, build, set_tower_weights, tower_weights
from tfrs_negatives.experiments.serving import add_export_flags
from tfrs_negatives.experiments.splits import Split, split_interactions

import numpy as np
import tensorflow as tf

Results = Dict[str, Dict[str, float]]
"""`{run: {metric: value}}`, what an example's `run` returns."""


def add_common_flags(
    parser: argparse.ArgumentParser, strategies: Sequence[str], epochs_help: Optional[str] = None
) -> None:
    """The flags every MovieLens example takes (data, protocol, strategies, output, export)."""
    parser.add_argument(
        "--movielens_dir",
        default=None,
        help="unzipped MovieLens folder (ml-100k, ml-1m, ml-latest-small, ...: told from "
        "its files); default: download through tfds",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="tfds config, e.g. 1m-ratings; default: the folder's release, else 100k-ratings",
    )
    parser.add_argument("--strategies", default=",".join(strategies))
    parser.add_argument("--epochs", type=int, default=3, help=epochs_help)
    parser.add_argument("--batch_size", type=int, default=8192)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--embedding_dim", type=int, default=32)
    parser.add_argument("--ks", default="10,50,100")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output_json", default=None)
    add_export_flags(parser)  # --export_dir, --export_index: see serving.export_and_query
    distribution.add_distribution_flags(parser)  # --distribution, --cpu_devices, ...


def prepare_distribution(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> Optional[tf.distribute.Strategy]:
    """The `tf.distribute` strategy of `--distribution` (None: none), or a parser error.

    Call it before any TensorFlow operation (`--cpu_devices` splits the CPU).
    """
    try:
        replicas = distribution.strategy_from_flags(args)
    except ValueError as err:
        parser.error(str(err))
    if replicas is not None:
        print(f"distribution: {distribution.describe(replicas, args)}")
    return replicas


def chosen_strategies(
    parser: argparse.ArgumentParser, args: argparse.Namespace, choices: Sequence[str]
) -> List[str]:
    """`--strategies` as a list, or a parser error naming the unknown ones."""
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = sorted(set(strategies) - set(choices))
    if unknown:
        parser.error(f"--strategies: unknown {unknown}; choose from {list(choices)}")
    return strategies


def parse_ks(args: argparse.Namespace) -> List[int]:
    """`--ks` as a list of ints."""
    return [int(k) for k in args.ks.split(",")]


def prepare_split(
    args: argparse.Namespace, parser: argparse.ArgumentParser, ks: List[int]
) -> Tuple[str, Split]:
    """Loads MovieLens (`--config`, `--movielens_dir`) and splits it with `--seed`.

    Returns:
      `(source, split)`: where the data came from, and the `Split` (train/test
      interactions, sorted user and title vocabularies, title positions, head titles).
      A largest k beyond the catalogue is a parser error.
    """
    dataset, source = load_movielens(args.config, args.movielens_dir)
    split = split_interactions(*rating_pairs(dataset), args.seed)
    if max(ks) > len(split.items):
        parser.error(f"--ks: k={max(ks)} exceeds the catalogue of {len(split.items)} titles")
    return source, split


class SameStart:
    """Gives every model of a comparison the first model's initial tower weights."""

    def __init__(self) -> None:
        self.weights: Optional[List[np.ndarray]] = None

    def __call__(self, model: TwoTowerModel, split: Split) -> None:
        """Builds `model`'s towers, then records (first model) or sets the initial weights."""
        build(model, split.users, split.items)
        if self.weights is None:
            self.weights = tower_weights(model)
        else:
            set_tower_weights(model, self.weights)


def fit_timed(
    model: tf.keras.Model,
    train: tf.data.Dataset,
    epochs: int,
    callbacks: Optional[list] = None,
) -> Tuple[List[float], float]:
    """Trains silently for `epochs` (none when 0); returns `(loss per epoch, seconds)`."""
    start = time.perf_counter()
    losses: List[float] = []
    if epochs > 0:  # 0: the model is evaluated as it starts
        history = model.fit(train, epochs=epochs, verbose=0, callbacks=callbacks or [])
        losses = history.history.get("loss", [])
    return losses, time.perf_counter() - start


def final_loss(losses: Sequence[float]) -> float:
    """The last epoch's loss, NaN without training."""
    return float(losses[-1]) if losses else float("nan")


def evaluate_recall(model: tf.keras.Model, split: Split, ks: Sequence[int]) -> Dict[str, float]:
    """Exact test recall@k over every title, overall, head and tail (`recall_at_k`)."""
    queries = model.query_tower(tf.constant(split.test_users)).numpy()
    items = model.item_tower(tf.constant(split.items)).numpy()
    return recall_at_k(queries, items, split.test_index, ks, split.head)


def print_table(results: Results, ks: List[int]) -> None:
    """Prints recall overall / head / tail per strategy (and loss, time when present)."""
    cols = [f"{p}recall@{k}" for p in ("", "head_", "tail_") for k in ks]
    extras = [
        (key, label, spec)
        for key, label, spec in (
            ("final_loss", "final loss", "12.4g"),
            ("train_seconds", "train s", "9.1f"),
        )
        if all(key in row for row in results.values())
    ]
    width = max([len("strategy")] + [len(name) for name in results]) + 2
    print(
        f"{'strategy':{width}s}"
        + "".join(f"{c:>17s}" for c in cols)
        + "".join(f"{label:>{spec.split('.')[0]}s}" for _, label, spec in extras)
    )
    for name, row in results.items():
        print(
            f"{name:{width}s}"
            + "".join(f"{row[c]:17.3f}" for c in cols)
            + "".join(f"{row[key]:{spec}}" for key, _, spec in extras)
        )


def write_json(path: str, header: Dict[str, object], results: Results) -> None:
    """Writes `header` plus the results; NaN (a group with no test interaction) as null."""
    clean = {
        name: {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
        for name, row in results.items()
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump({**header, "results": clean}, f, indent=2, allow_nan=False)


def main(run_fn: Callable[[], object]) -> None:
    """Runs `run_fn`, turning user errors into a message on stderr and exit status 2."""
    try:
        run_fn()
    except (RuntimeError, FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
