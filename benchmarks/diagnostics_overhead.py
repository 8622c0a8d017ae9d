"""Step-time overhead of `CorrectedRetrieval(diagnostics=True)` (negative diagnostics metrics).

The same `tfrs.Model` training step with the diagnostics on and off, at each batch
size, all four cells in one process and interleaved step by step (the on/off order
alternates every step), median ms/step after warmup; the ratio on / off is the overhead.

Setup: in-batch + 1024 uniform negatives (`CorrectedRetrieval` with a
`StreamingFrequencyEstimator`, accidental hits removed, duplicates masked, XLA-fused
loss), ID towers `StringLookup` + `Embedding(64)` over string user and item ids,
Adagrad(0.1), positives drawn with Zipf(1.0) popularity. Both models of a batch size
start from the same weights and draw the same negatives, so their first losses must
agree (printed as a check that the diagnostics leave the loss alone).

Printed per batch size: median ms/step off and on, their ratio (the target), the median of
the ratios of the two steps taken one after the other (`paired`, robust to the load of other
processes drifting during the run) and the ratio of the fastest steps.

Target: on / off <= 1.05 at every batch size.

Usage: python benchmarks/diagnostics_overhead.py [--batch_sizes 4096 8192] [--steps 20]
           [--warmup 3] [--num_items 100000] [--uniform_count 1024] [--diagnostics_stride 32]
"""

import argparse
import math
import statistics
import time

import tfrs_negatives as tfn

import numpy as np
import tensorflow as tf
from _towers import TwoTower, string_id_tower

NUM_USERS = 10_000


def make_batches(users, items, batch_size: int, num_batches: int, seed: int):
    """`num_batches` batches of string user and item ids; items Zipf(1.0) over a permutation."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, len(items) + 1))
    cdf /= cdf[-1]
    rank_to_item = rng.permutation(len(items))
    batches = []
    for _ in range(num_batches):
        ranks = np.minimum(np.searchsorted(cdf, rng.random(batch_size)), len(items) - 1)
        batches.append(
            {
                "user_id": tf.constant(users[rng.integers(0, len(users), batch_size)]),
                "item_id": tf.constant(items[rank_to_item[ranks]]),
            }
        )
    return batches


def row_option(args) -> dict:
    """`diagnostics_stride` for the task: the task's default, or the one given."""
    return (
        {} if args.diagnostics_stride is None else {"diagnostics_stride": args.diagnostics_stride}
    )


def make_step(users, items, diagnostics: bool, args):
    """A compiled train step of a fresh model (same seed, hence same weights and draws)."""
    tf.keras.utils.set_random_seed(0)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=args.num_buckets),
        negatives=[
            tfn.negatives.InBatch(name="in_batch"),
            tfn.negatives.Uniform(items, count=args.uniform_count, seed=0, name="uniform"),
        ],
        diagnostics=diagnostics,
        **row_option(args),
    )
    model = TwoTower(string_id_tower(users, args.dim), string_id_tower(items, args.dim), task)
    model.query_tower(users[:1])  # builds the towers now, from the seed set above
    model.item_tower(items[:1])
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    return tf.function(model.train_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--num_items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--uniform_count", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--num_batches", type=int, default=6, help="distinct batches, cycled")
    parser.add_argument(
        "--diagnostics_stride",
        type=int,
        default=None,
        help="measure every n-th row (default: the task's; 1: every row)",
    )
    parser.add_argument("--num_buckets", type=int, default=2**18, help="estimator buckets")
    args = parser.parse_args()

    users = np.array([f"user {i}" for i in range(NUM_USERS)])
    items = np.array([f"item title {i} (1995)" for i in range(args.num_items)])
    cells = {}
    for b in args.batch_sizes:
        batches = make_batches(users, items, b, args.num_batches, seed=b)
        for on in (False, True):
            cells[b, on] = (make_step(users, items, on, args), batches)

    start = time.perf_counter()
    times = {key: [] for key in cells}
    first_loss, keys = {}, {}
    for i in range(args.warmup + args.steps):
        for b in args.batch_sizes:
            order = (False, True) if i % 2 == 0 else (True, False)
            for on in order:
                step, batches = cells[b, on]
                begin = time.perf_counter()
                logs = step(batches[i % len(batches)])
                loss = float(logs["loss"])  # waits for the step
                elapsed = time.perf_counter() - begin
                if i >= args.warmup:
                    times[b, on].append(elapsed)
                if i == 0:
                    first_loss[b, on] = loss
                    keys[b, on] = sorted(k for k in logs if k.startswith("negatives/"))
                if not math.isfinite(loss):
                    raise RuntimeError(f"batch {b}, diagnostics={on}: loss {loss}")
    print(f"timed in {time.perf_counter() - start:.1f} s")

    print(
        f"\nin-batch + {args.uniform_count} uniform, string ids, ID towers dim {args.dim}, "
        f"{args.num_items:,} items, {args.steps} steps per cell after {args.warmup} warmup, "
        "on/off interleaved step by step"
    )
    names = keys[args.batch_sizes[0], True]
    print(f"diagnostic metrics: {len(names)} ({', '.join(names)})")
    print(
        f"{'batch':>6s} {'off ms/step':>12s} {'on ms/step':>11s} {'on/off':>7s} "
        f"{'paired':>7s} {'fastest on/off':>15s}  first loss off / on"
    )
    for b in args.batch_sizes:
        off, on = statistics.median(times[b, False]), statistics.median(times[b, True])
        fastest = min(times[b, True]) / min(times[b, False])
        paired = statistics.median(t / u for t, u in zip(times[b, True], times[b, False]))
        print(
            f"{b:>6d} {1000 * off:12.1f} {1000 * on:11.1f} {on / off:7.3f} {paired:7.3f} "
            f"{fastest:15.3f}  "
            f"{first_loss[b, False]:.6f} / {first_loss[b, True]:.6f}"
        )
    print("target: on/off <= 1.05")


if __name__ == "__main__":
    main()
