"""Global against per-replica in-batch negatives under MirroredStrategy, beside one device.

MovieLens 100K, the TFRS tutorial's protocol (80/20 split with seed 42, id towers of
32, Adagrad 0.1, 3 epochs), global batch 8192 split over `--replicas` logical CPU
devices. Every run starts from the same initial weights and trains log-Q corrected
in-batch retrieval (streaming frequency estimator, accidental hits removed):

* `one_device`: `CorrectedRetrieval`, no strategy (the reference);
* `global`: the same under `MirroredStrategy`, in-batch negatives gathered from every
  replica (the library's default): expected to equal `one_device`;
* `per_replica`: the same with `cross_replica_negatives=False`: each replica's 2048
  rows are its own negatives;
* `tfrs_per_replica` (the peer a TFRS user has): `tfrs.tasks.Retrieval` with
  `remove_accidental_hits=True` and `candidate_sampling_probability` from exact
  training counts, under the same strategy (TFRS's negatives are per replica).

Prints test recall@100 overall / head / tail, the median step time and its ratio to
`global`. The logical devices share the machine's cores, so step times say what the
extra all-gather and the `[B/R, B]` logits cost relative to the per-replica step, not
what GPUs would do.

Usage:
  python benchmarks/distributed_negatives.py --movielens_dir ../shared/data/ml-100k
"""

import argparse
import json
from typing import Callable, Dict, List, Optional, Sequence

import tfrs_negatives as tfn
from tfrs_negatives.experiments import datasets, distribution
from tfrs_negatives.experiments.harness import evaluate_recall
from tfrs_negatives.experiments.model import TwoTowerModel, build, set_tower_weights, tower_weights
from tfrs_negatives.experiments.splits import Split, split_interactions, training_batches
from tfrs_negatives.experiments.training import StepTimer

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs


class TfrsLogQModel(TwoTowerModel):
    """The tutorial's towers with TFRS's own task, log-Q corrected from exact counts."""

    def __init__(self, split: Split, embedding_dim: int) -> None:
        super().__init__(split.users, split.items, tfrs.tasks.Retrieval(), embedding_dim)
        self.task = tfrs.tasks.Retrieval(remove_accidental_hits=True)
        counts = split.train_counts.astype(np.float64)
        self.probability = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(split.items), tf.constant(counts / counts.sum(), tf.float32)
            ),
            default_value=1.0,
        )

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        titles = features["movie_title"]
        return self.task(
            self.query_tower(features["user_id"]),
            self.item_tower(titles),
            candidate_sampling_probability=self.probability.lookup(titles),
            candidate_ids=titles,
            compute_metrics=False,
        )


def _corrected(split: Split, dim: int, cross_replica: Optional[bool]) -> TwoTowerModel:
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(),
        remove_accidental_hits=True,
        cross_replica_negatives=cross_replica,
    )
    return TwoTowerModel(split.users, split.items, task, dim)


def train_run(
    make_model: Callable[[], TwoTowerModel],
    strategy: Optional[tf.distribute.Strategy],
    split: Split,
    args: argparse.Namespace,
    start: Optional[List[np.ndarray]],
) -> tuple:
    """Trains one run; returns `(metrics, initial tower weights)`."""
    tf.keras.utils.set_random_seed(args.seed)
    with distribution.scope(strategy):
        model = make_model()
        build(model, split.users, split.items)
        if start is not None:
            set_tower_weights(model, start)
        initial = tower_weights(model)
        model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
        train = training_batches(split.train_users, split.train_items, args.batch_size, args.seed)
        timer = StepTimer()
        history = model.fit(train, epochs=args.epochs, verbose=0, callbacks=[timer])
    metrics = evaluate_recall(model, split, [100])
    metrics.update(step_ms=timer.median_ms, final_loss=float(history.history["loss"][-1]))
    return metrics, initial


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--movielens_dir", default=None, help="unzipped ml-100k (else tfds)")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=8192, help="the global batch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--embedding_dim", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    distribution.split_cpu(args.replicas)  # before any TF op
    data = datasets.load_interactions(None, args.movielens_dir)
    split = split_interactions(data.users, data.items, args.seed)
    mirrored = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")]
    )
    dim = args.embedding_dim
    runs = {
        "one_device": (lambda: _corrected(split, dim, None), None),
        "global": (lambda: _corrected(split, dim, None), mirrored),
        "per_replica": (lambda: _corrected(split, dim, False), mirrored),
        "tfrs_per_replica": (lambda: TfrsLogQModel(split, dim), mirrored),
    }
    print(
        f"data: {data.source}; {len(split.train_users)} train interactions, "
        f"{len(split.items)} items; global batch {args.batch_size} over "
        f"{mirrored.num_replicas_in_sync} replicas ({args.batch_size // args.replicas} each)"
    )
    results: Dict[str, Dict[str, float]] = {}
    start = None
    for name, (make_model, strategy) in runs.items():
        results[name], start = train_run(make_model, strategy, split, args, start)
        print(f"  {name}: {results[name]['recall@100']:.4f}", flush=True)
    _print(results)
    if args.output_json:
        with open(args.output_json, "w", encoding="utf-8") as f:
            json.dump({"source": data.source, "arguments": vars(args), "results": results}, f)


def _print(results: Dict[str, Dict[str, float]]) -> None:
    base = results["global"]["step_ms"]
    print(f"\n{'run':18s}{'R@100':>8s}{'head':>8s}{'tail':>8s}{'ms/step':>9s}{'/ global':>10s}")
    for name, row in results.items():
        print(
            f"{name:18s}{row['recall@100']:8.4f}{row['head_recall@100']:8.4f}"
            f"{row['tail_recall@100']:8.4f}{row['step_ms']:9.0f}{row['step_ms'] / base:10.2f}"
        )
    gap = results["global"]["recall@100"] - results["one_device"]["recall@100"]
    print(f"\nglobal - one_device R@100: {gap:+.4f} (the same computation: expected ~0)")
    gap = results["per_replica"]["recall@100"] - results["global"]["recall@100"]
    print(f"per_replica - global R@100: {gap:+.4f}")


if __name__ == "__main__":
    main()
