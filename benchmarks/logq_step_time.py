"""Training-step time of `CorrectedRetrieval` against plain TFRS in-batch retrieval.

Measured side by side in one process, interleaved round-robin, median over steps:

* `plain`: `tfrs.tasks.Retrieval()`, no correction, no accidental-hit removal;
* `corrected`: `CorrectedRetrieval(StreamingFrequencyEstimator, remove_accidental_hits=True)`
  with string candidate ids;
* `corrected_nojit`: the same as `corrected` without XLA fusion (`jit_compile=False`),
  to show what the fusion buys;
* `tfrs_hits`: `tfrs.tasks.Retrieval(remove_accidental_hits=True)` with string ids.

Towers: `StringLookup` + `Embedding(32)` for users and items (the TFRS tutorial's),
Adagrad(0.1), batch 8192, synthetic MovieLens-sized data (943 users, 1682 items,
Zipf(1.0) item popularity).

Usage: python benchmarks/logq_step_time.py [--batch_size 8192] [--steps 20]
"""

import argparse
import statistics
import time

import tfrs_negatives as tfn

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
from _towers import TaskCall, TwoTower, string_id_tower


def make_batches(batch_size: int, num_batches: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    num_users, num_items = 943, 1682
    weights = 1.0 / np.arange(1, num_items + 1)
    weights /= weights.sum()
    users = np.array([f"u{i}" for i in range(num_users)])
    items = np.array([f"item title {i} (1995)" for i in range(num_items)])
    batches = []
    for _ in range(num_batches):
        batches.append(
            {
                "user_id": tf.constant(users[rng.integers(0, num_users, batch_size)]),
                "movie_title": tf.constant(items[rng.choice(num_items, batch_size, p=weights)]),
            }
        )
    return batches, users, items


def two_tower(users, items, task, pass_training: bool) -> TwoTower:
    """The tutorial's towers (`Embedding(32)`); the task gets the ids, not the item tower."""
    return TwoTower(
        string_id_tower(users, 32),
        string_id_tower(items, 32),
        task,
        TaskCall(item_key="movie_title", candidate_tower=False, pass_training=pass_training),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_size", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    batches, users, items = make_batches(args.batch_size, 8)
    variants = {
        "plain": two_tower(users, items, tfrs.tasks.Retrieval(), False),
        "corrected": two_tower(
            users,
            items,
            tfn.CorrectedRetrieval(
                frequency=tfn.StreamingFrequencyEstimator(), remove_accidental_hits=True
            ),
            True,
        ),
        "corrected_nojit": two_tower(
            users,
            items,
            tfn.CorrectedRetrieval(
                frequency=tfn.StreamingFrequencyEstimator(),
                remove_accidental_hits=True,
                jit_compile=False,
            ),
            True,
        ),
        "tfrs_hits": two_tower(
            users, items, tfrs.tasks.Retrieval(remove_accidental_hits=True), False
        ),
    }
    steps = {}
    for name, model in variants.items():
        model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
        steps[name] = tf.function(model.train_step)
    times = {name: [] for name in variants}
    for i in range(args.warmup + args.steps):
        for name, step in steps.items():
            batch = batches[i % len(batches)]
            start = time.perf_counter()
            logs = step(batch)
            float(logs["loss"])  # wait for the step
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"batch {args.batch_size}, {args.steps} steps each, interleaved; median step time")
    for name in variants:
        print(f"  {name:16s} {1000 * median[name]:8.1f} ms")
    print(
        f"ratio corrected / plain   = {median['corrected'] / median['plain']:.3f}  (target <= 1.10)"
    )
    for name in ("corrected_nojit", "tfrs_hits"):
        print(f"ratio {name} / plain = {median[name] / median['plain']:.3f}")


if __name__ == "__main__":
    main()
