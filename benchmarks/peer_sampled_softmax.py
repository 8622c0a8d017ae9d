"""Sampled softmax against the peers a TFRS user would pick instead, on the same work.

Two comparisons, each at every catalogue size N, all cells in one process, interleaved
round-robin (one step of each in turn), median over steps:

1. Uniform sampled softmax (no in-batch negatives), K draws per step, accidental hits
   removed, log-Q corrected:
   * `tf_core`: `tf.nn.sampled_softmax_loss` (uniform sampler with replacement,
     `remove_accidental_hits=True`; it subtracts `log Q` of the true and sampled
     classes), weights = the item tower's embedding table, zero biases;
   * `ours`: `CorrectedRetrieval(negatives=[Uniform(catalogue, K)])` with its defaults
     (duplicates masked and corrected by inclusion probability, diagnostics on);
   * `ours_keep`: the same with `duplicates="keep", diagnostics=False` -- TF core's work
     exactly (each draw its own term, no statistics);
   * `ours_check_finite`: `ours` with `check_finite=True` (the NaN/inf checks of the
     embeddings), to price that option.
2. In-batch softmax plus K uniform draws against TFRS's plain in-batch task:
   * `tfrs_inbatch`: `tfrs.tasks.Retrieval()` (no correction, no hit removal);
   * `ours_inbatch+uniform`: `CorrectedRetrieval(StreamingFrequencyEstimator(),
     negatives=[InBatch(), Uniform(catalogue, K)])`.

Towers: `Embedding(10^4, D)` users, `Embedding(N, D)` items, int64 ids, Adagrad(0.1),
batch B, positives Zipf(1.0) over a permutation of the catalogue. Each model's train
step is one `tf.function`; the first step of each cell (tracing and XLA compilation)
and its first step at a second batch size (the short last batch of an epoch) are
timed separately and reported as compile costs.

Target: ours <= 1.0x tf_core on the same work.

Usage: python benchmarks/peer_sampled_softmax.py [--sizes 100000 1000000]
           [--batch_size 4096] [--dim 64] [--num_sampled 1024] [--steps 10] [--warmup 2]
"""

import argparse
import math
import statistics
import time

import tfrs_negatives as tfn

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
from _towers import NUM_USERS, TaskCall, TwoTower, zipf_id_batches

CELLS = (
    "tf_core",
    "ours",
    "ours_keep",
    "ours_check_finite",
    "tfrs_inbatch",
    "ours_inbatch+uniform",
)
PAIRS = (
    ("ours", "tf_core", " (target <= 1.00)"),
    ("ours_keep", "tf_core", " (target <= 1.00)"),
    ("ours_inbatch+uniform", "tfrs_inbatch", ""),
    ("ours_check_finite", "ours", " (cost of check_finite=True)"),
)


class TFCoreSampledSoftmax(tfrs.Model):
    """The same ID towers trained with `tf.nn.sampled_softmax_loss` (uniform sampler)."""

    def __init__(self, num_items: int, dim: int, num_sampled: int) -> None:
        super().__init__()
        self.query_tower = tf.keras.layers.Embedding(NUM_USERS, dim)
        self.item_tower = tf.keras.layers.Embedding(num_items, dim)
        self.item_tower.build([None])
        self.num_items = num_items
        self.num_sampled = num_sampled

    def compute_loss(self, features, training=False):
        labels = features["item_id"][:, None]
        sampled = tf.random.uniform_candidate_sampler(
            labels, 1, self.num_sampled, unique=False, range_max=self.num_items
        )
        per_row = tf.nn.sampled_softmax_loss(
            weights=self.item_tower.embeddings,
            biases=tf.zeros([self.num_items]),
            labels=labels,
            inputs=self.query_tower(features["user_id"]),
            num_sampled=self.num_sampled,
            num_classes=self.num_items,
            sampled_values=sampled,
            remove_accidental_hits=True,
        )
        return tf.reduce_sum(per_row)


def make_model(num_items: int, dim: int, task, num_sampled: int) -> tfrs.Model:
    """`task` "tf_core", or a retrieval task (ours, or TFRS's) on the shared towers."""
    if task == "tf_core":
        return TFCoreSampledSoftmax(num_items, dim, num_sampled)
    ours = isinstance(task, tfn.CorrectedRetrieval)
    return TwoTower(
        tf.keras.layers.Embedding(NUM_USERS, dim),
        tf.keras.layers.Embedding(num_items, dim),
        task,
        TaskCall(candidate_tower=ours, pass_training=ours),
    )


def make_task(cell: str, catalogue, args):
    if cell == "tf_core":
        return "tf_core"
    if cell == "tfrs_inbatch":
        return tfrs.tasks.Retrieval()
    uniform = tfn.negatives.Uniform(catalogue, count=args.num_sampled, seed=0)
    if cell == "ours":
        return tfn.CorrectedRetrieval(negatives=[uniform])
    if cell == "ours_check_finite":
        return tfn.CorrectedRetrieval(negatives=[uniform], check_finite=True)
    if cell == "ours_keep":
        return tfn.CorrectedRetrieval(negatives=[uniform], duplicates="keep", diagnostics=False)
    if cell == "ours_inbatch+uniform":
        return tfn.CorrectedRetrieval(
            frequency=tfn.StreamingFrequencyEstimator(num_buckets=2**18),
            negatives=[tfn.negatives.InBatch(), uniform],
        )
    raise ValueError(cell)


def build_cells(args) -> dict:
    """`{(N, cell): (train step, batches)}`."""
    cells = {}
    for n in args.sizes:
        batches = zipf_id_batches(n, args.batch_size, args.num_batches, seed=n)
        catalogue = tfn.negatives.Catalogue(np.arange(n, dtype=np.int64))
        for cell in CELLS:
            model = make_model(n, args.dim, make_task(cell, catalogue, args), args.num_sampled)
            model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
            cells[n, cell] = (tf.function(model.train_step), batches)
    return cells


def timed_step(step, batch) -> float:
    start = time.perf_counter()
    loss = float(step(batch)["loss"])  # waits for the step
    if not math.isfinite(loss):
        raise RuntimeError(f"loss {loss}")
    return time.perf_counter() - start


def compile_costs(cells: dict, args) -> dict:
    """`{key: (first step s, first step at a second batch size s)}`."""
    costs = {}
    short = max(1, args.batch_size // 3)
    for key, (step, batches) in cells.items():
        first = timed_step(step, batches[0])
        smaller = {name: values[:short] for name, values in batches[1].items()}
        costs[key] = (first, timed_step(step, smaller))
    return costs


def time_cells(cells: dict, args) -> dict:
    times = {key: [] for key in cells}
    for i in range(args.warmup + args.steps):
        for key, (step, batches) in cells.items():
            elapsed = timed_step(step, batches[i % len(batches)])
            if i >= args.warmup:
                times[key].append(elapsed)
    return times


def report(times: dict, costs: dict, args) -> None:
    print(
        f"\nbatch {args.batch_size}, dim {args.dim}, K={args.num_sampled} uniform, int64 ids, "
        f"Adagrad(0.1), {args.steps} interleaved steps per cell after {args.warmup} warmup"
    )
    print(
        f"{'cell':22s}{'N':>11s}{'median ms':>11s}{'fastest':>9s}{'1st step s':>12s}{'new B s':>9s}"
    )
    median = {key: statistics.median(t) for key, t in times.items()}
    for (n, cell), t in times.items():
        first, second = costs[n, cell]
        print(
            f"{cell:22s}{n:>11,}{1000 * median[n, cell]:11.1f}{1000 * min(t):9.1f}"
            f"{first:12.2f}{second:9.2f}"
        )
    print()
    for n in args.sizes:
        for ours, peer, target in PAIRS:
            ratio = median[n, ours] / median[n, peer]
            paired = statistics.median(a / b for a, b in zip(times[n, ours], times[n, peer]))
            print(f"N={n:>9,}  {ours} / {peer} = {ratio:.2f} (paired {paired:.2f}){target}")


FIRST_EPOCH_TASKS = (
    "tfrs",
    "ours (TFRS's arguments)",
    "ours + estimator",
    "ours + estimator + uniform",
    "the same, jit_compile=False",
)


def first_epoch_task(name: str, catalogue):
    if name == "tfrs":
        return tfrs.tasks.Retrieval()
    if name == "ours (TFRS's arguments)":
        return tfn.CorrectedRetrieval()
    estimator = tfn.StreamingFrequencyEstimator(num_buckets=2**12)
    if name == "ours + estimator":
        return tfn.CorrectedRetrieval(frequency=estimator)
    uniform = tfn.negatives.Uniform(catalogue, count=256, seed=0)
    return tfn.CorrectedRetrieval(
        frequency=estimator,
        negatives=[tfn.negatives.InBatch(), uniform],
        jit_compile=name == "ours + estimator + uniform",
    )


def first_epoch_costs(num_items: int = 2000, num_examples: int = 20_000) -> None:
    """Wall time of `fit`'s first and second epoch on a small model (tracing and XLA first)."""
    catalogue = tfn.negatives.Catalogue(np.arange(num_items, dtype=np.int64))
    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices(
        {
            "user_id": rng.integers(0, NUM_USERS, num_examples),
            "item_id": rng.integers(0, num_items, num_examples),
        }
    ).batch(4096)  # 4 full batches and a short last one
    print(
        f"\nfit on {num_examples:,} examples, batch 4096 (last batch shorter), dim 32, "
        f"{num_items:,} items; a throwaway model first takes the process's one-off start-up"
    )
    for name in ("warm-up",) + FIRST_EPOCH_TASKS:
        task = first_epoch_task("tfrs" if name == "warm-up" else name, catalogue)
        model = make_model(num_items, 32, task, 0)
        model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
        epochs = []
        for _ in range(2):
            start = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            epochs.append(time.perf_counter() - start)
        if name != "warm-up":
            print(f"  {name:28s} first epoch {epochs[0]:6.2f} s, second {epochs[1]:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--num_sampled", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--num_batches", type=int, default=6, help="distinct batches, cycled")
    parser.add_argument(
        "--skip_first_epoch", action="store_true", help="skip the small model's fit timing"
    )
    args = parser.parse_args()
    if not args.skip_first_epoch:
        first_epoch_costs()
    start = time.perf_counter()
    cells = build_cells(args)
    costs = compile_costs(cells, args)
    times = time_cells(cells, args)
    print(f"timed in {time.perf_counter() - start:.1f} s")
    report(times, costs, args)


if __name__ == "__main__":
    main()
