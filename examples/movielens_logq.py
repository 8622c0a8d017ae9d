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
from typing import Dict, Optional, Sequence

import tfrs_negatives as tfn  # first: selects Keras 2 for TFRS
from tfrs_negatives.experiments import TwoTowerModel, distribution, training_batches
from tfrs_negatives.experiments.harness import (
    Results,
    add_common_flags,
    chosen_strategies,
    evaluate_recall,
    fit_timed,
    main,
    parse_ks,
    prepare_distribution,
    prepare_split,
    print_table,
    write_json,
)
from tfrs_negatives.experiments.serving import export_and_query

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

STRATEGIES = ("plain", "logq_streaming", "logq_exact")


def make_task(strategy: str, train_titles: np.ndarray, **options) -> tf.keras.layers.Layer:
    """The retrieval task of a strategy name (`options`: more `CorrectedRetrieval` arguments)."""
    if strategy == "plain":
        return tfrs.tasks.Retrieval()
    if strategy == "logq_streaming":
        return tfn.CorrectedRetrieval(
            frequency=tfn.StreamingFrequencyEstimator(), remove_accidental_hits=True, **options
        )
    if strategy == "logq_exact":
        counts = tfn.ExactFrequencyEstimator.from_dataset(
            tf.data.Dataset.from_tensor_slices(train_titles).batch(65536)
        )
        return tfn.CorrectedRetrieval(frequency=counts, remove_accidental_hits=True, **options)
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def run(argv: Optional[Sequence[str]] = None) -> Results:
    """Trains every strategy and returns `{strategy: {metric: value}}`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_flags(parser, STRATEGIES)
    args = parser.parse_args(argv)
    strategies = chosen_strategies(parser, args, STRATEGIES)
    ks = parse_ks(args)
    replicas = prepare_distribution(args, parser)  # before any TF op
    source, split = prepare_split(args, parser, ks)
    users, titles, head = split.users, split.items, split.head
    print(
        f"data: {source}; {len(split.train_users)} train / {len(split.test_users)} test ratings, "
        f"{len(users)} users, {len(titles)} titles, {head.sum()} head titles"
    )

    train = distribution.distributed(
        training_batches(split.train_users, split.train_items, args.batch_size, args.seed),
        replicas,
    )
    results: Results = {}
    models: Dict[str, tf.keras.Model] = {}
    for strategy in strategies:
        tf.keras.utils.set_random_seed(args.seed)  # every run from the same initial weights
        with distribution.scope(replicas):
            # The tutorial's two towers (`user_id`, `movie_title` features) and a task.
            task = make_task(strategy, split.train_items, **distribution.task_options(args))
            model = models[strategy] = TwoTowerModel(users, titles, task, args.embedding_dim)
            model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
            _, seconds = fit_timed(model, train, args.epochs)
        results[strategy] = {**evaluate_recall(model, split, ks), "train_seconds": seconds}
    print_table(results, ks)
    if not distribution.is_chief(replicas):
        return results  # the chief writes and exports
    if args.output_json:
        write_json(args.output_json, {"source": source}, results)
    export_and_query(args, results, models, split.test_users, titles)  # the best run, served
    return results


if __name__ == "__main__":
    main(run)
