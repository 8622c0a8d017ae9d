"""TFRS's basic retrieval model on MovieLens, trained plain and log-Q corrected side by side.

The TFRS tutorial protocol ("Recommending movies: retrieval"): ratings of
`movielens/100k-ratings` as (user_id, movie_title) pairs, an 80/20 random split
(seed 42), `StringLookup` + `Embedding(32)` towers, Adagrad(0.1), batch 8192,
3 epochs. Three runs from the same initial weights:

* `plain`: `tfrs.tasks.Retrieval()`, the tutorial's in-batch softmax;
* `logq_streaming`: `CorrectedRetrieval` with a `StreamingFrequencyEstimator`
  learning item frequencies during training (no precomputed counts) and
  accidental-hit removal;
* `logq_exact`: the same with exact training counts (`ExactFrequencyEstimator`).

Test recall@10/50/100 over every title, overall and split into head titles (the
most popular ones holding half the training interactions) and tail titles.

Usage:
  python examples/movielens_logq.py                       # tfds (downloads)
  python examples/movielens_logq.py --movielens_dir ../shared/data/ml-100k  # offline
"""

import argparse
import json
import sys
import time
from typing import Dict, List, Optional, Sequence

import tfrs_negatives as tfn  # first: selects Keras 2 for TFRS
from tfrs_negatives.data import load_movielens
from tfrs_negatives.evaluation import recall_at_k
from tfrs_negatives.experiments import (  # noqa: F401 - also the other examples' harness
    TwoTowerModel,
    build,
    set_tower_weights,
    split_interactions,
    tower_weights,
    training_batches,
)
from tfrs_negatives.experiments.datasets import rating_pairs
from tfrs_negatives.experiments.serving import add_export_flags, export_and_query

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

STRATEGIES = ("plain", "logq_streaming", "logq_exact")


# The tutorial's two towers (`user_id`, `movie_title` string features) and a task.
MovielensModel = TwoTowerModel


def make_task(strategy: str, train_titles: np.ndarray) -> tf.keras.layers.Layer:
    """The retrieval task of a strategy name."""
    if strategy == "plain":
        return tfrs.tasks.Retrieval()
    if strategy == "logq_streaming":
        return tfn.CorrectedRetrieval(
            frequency=tfn.StreamingFrequencyEstimator(), remove_accidental_hits=True
        )
    if strategy == "logq_exact":
        counts = tfn.ExactFrequencyEstimator.from_dataset(
            tf.data.Dataset.from_tensor_slices(train_titles).batch(65536)
        )
        return tfn.CorrectedRetrieval(frequency=counts, remove_accidental_hits=True)
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def add_common_flags(
    parser: argparse.ArgumentParser, strategies: Sequence[str], epochs_help: Optional[str] = None
) -> None:
    """The flags every MovieLens example takes (data, protocol, strategies, output)."""
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
    add_export_flags(parser)  # --export_dir, --export_index: see export_and_query


def chosen_strategies(
    parser: argparse.ArgumentParser, args: argparse.Namespace, choices: Sequence[str]
) -> List[str]:
    """`--strategies` as a list, or a parser error naming the unknown ones."""
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = sorted(set(strategies) - set(choices))
    if unknown:
        parser.error(f"--strategies: unknown {unknown}; choose from {list(choices)}")
    return strategies


def prepare_split(args: argparse.Namespace, parser: argparse.ArgumentParser, ks: List[int]):
    """Loads MovieLens and splits it (the tutorial protocol).

    Returns:
      `(source, split)`: where the data came from, and the
      `tfrs_negatives.experiments.Split` (train/test interactions, sorted user and
      title vocabularies, title positions, head titles).
    """
    dataset, source = load_movielens(args.config, args.movielens_dir)
    split = split_interactions(*rating_pairs(dataset), args.seed)
    if max(ks) > len(split.items):
        parser.error(f"--ks: k={max(ks)} exceeds the catalogue of {len(split.items)} titles")
    return source, split


def run(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    """Trains every strategy and returns `{strategy: {metric: value}}`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_flags(parser, STRATEGIES)
    args = parser.parse_args(argv)
    strategies = chosen_strategies(parser, args, STRATEGIES)
    ks = [int(k) for k in args.ks.split(",")]
    source, split = prepare_split(args, parser, ks)
    users, titles, head = split.users, split.items, split.head
    print(
        f"data: {source}; {len(split.train_users)} train / {len(split.test_users)} test ratings, "
        f"{len(users)} users, {len(titles)} titles, {head.sum()} head titles"
    )

    train = training_batches(split.train_users, split.train_items, args.batch_size, args.seed)
    results: Dict[str, Dict[str, float]] = {}
    models: Dict[str, tf.keras.Model] = {}
    for strategy in strategies:
        tf.keras.utils.set_random_seed(args.seed)
        model = models[strategy] = MovielensModel(
            users, titles, make_task(strategy, split.train_items), args.embedding_dim
        )
        model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
        start = time.perf_counter()
        model.fit(train, epochs=args.epochs, verbose=0)
        seconds = time.perf_counter() - start
        queries = model.query_tower(tf.constant(split.test_users)).numpy()
        items = model.item_tower(tf.constant(titles)).numpy()
        results[strategy] = {
            **recall_at_k(queries, items, split.test_index, ks, head),
            "train_seconds": seconds,
        }
    print_table(results, ks)
    if args.output_json:
        write_json(args.output_json, {"source": source}, results)
    export_and_query(args, results, models, split.test_users, titles)  # the best run, served
    return results


def print_table(results: Dict[str, Dict[str, float]], ks: List[int]) -> None:
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


def write_json(path: str, header: Dict[str, object], results: Dict[str, Dict[str, float]]) -> None:
    """Writes `header` plus the results; NaN (a group with no test interaction) as null."""
    clean = {
        name: {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
        for name, row in results.items()
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump({**header, "results": clean}, f, indent=2, allow_nan=False)


def main(run_fn=None) -> None:
    """Runs `run_fn` (default: this example), turning user errors into a message and exit 2."""
    try:
        (run_fn or run)()
    except (RuntimeError, FileNotFoundError, ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
