"""Training-step time of mixed negatives as the catalogue grows from 10^4 to 10^6 items.

Three strategies at each catalogue size N, every (N, strategy) pair its own model, all
measured in one process and interleaved round-robin (one step of each in turn), median over
steps:

* `in_batch`: `CorrectedRetrieval(StreamingFrequencyEstimator, remove_accidental_hits=True)`,
  in-batch negatives only;
* `in_batch+uniform`: the same with `negatives=[InBatch(), Uniform(catalogue, 1024)]`;
* `full_softmax`: `negatives=[FullCatalogue(catalogue)]`, every catalogue item each step
  (hit removal masks the positive's own catalogue column). Its logits are a
  `[batch, N + batch]` float32 matrix, and a step peaks at about 5 times that (their
  gradient, the fused softmax's temporaries, the `[batch, N + batch]` masks): 9 GB of RSS
  at N=10^5. Sizes whose estimate exceeds `--max_full_softmax_gb` or 80% of the memory
  available at start are skipped with the size they would need (10^6 x 4096: 16.5 GB of
  logits).

Towers: `Embedding(10^4, 64)` over int64 user ids, `Embedding(N, 64)` over int64 item ids
(the catalogue's ids are `0..N-1`), Adagrad(0.1) (sparse updates of the embedding tables),
batch 4096, positives drawn with Zipf(1.0) popularity over a random permutation of the
catalogue. Sizes are interleaved too, not run one after another: on a shared machine the
load of other processes drifts over minutes, and the N=10^6 / N=10^4 ratio is the target.

Targets: in-batch + 1024 uniform at 10^6 / at 10^4 <= 1.2 (sampling cost independent of N).

Usage: python benchmarks/mixed_step_time.py [--sizes 10000 100000 1000000]
           [--batch_size 4096] [--steps 8] [--warmup 3] [--uniform_count 1024]
"""

import argparse
import math
import resource
import statistics
import time

import tfrs_negatives as tfn

import numpy as np
import tensorflow as tf
from _towers import NUM_USERS, TwoTower, zipf_id_batches

STRATEGIES = ("in_batch", "in_batch+uniform", "full_softmax")


def make_task(strategy: str, catalogue, args) -> tfn.CorrectedRetrieval:
    if strategy == "in_batch":
        return tfn.CorrectedRetrieval(
            frequency=tfn.StreamingFrequencyEstimator(num_buckets=args.num_buckets),
            remove_accidental_hits=True,
        )
    if strategy == "in_batch+uniform":
        return tfn.CorrectedRetrieval(
            frequency=tfn.StreamingFrequencyEstimator(num_buckets=args.num_buckets),
            negatives=[
                tfn.negatives.InBatch(),
                tfn.negatives.Uniform(catalogue, count=args.uniform_count, seed=0),
            ],
            remove_accidental_hits=True,
        )
    if strategy == "full_softmax":
        return tfn.CorrectedRetrieval(
            negatives=[tfn.negatives.FullCatalogue(catalogue)], remove_accidental_hits=True
        )
    raise ValueError(strategy)


#: Peak memory of a full-softmax step over the size of its logits (measured ~4.7 at 10^5).
FULL_SOFTMAX_PEAK_FACTOR = 5.0


def logits_gb(num_items: int, batch_size: int) -> float:
    """Size of the `[batch, N + batch]` float32 logit matrix of the full softmax, in GB."""
    return batch_size * (num_items + batch_size) * 4 / 1e9


def build_cells(sizes, args) -> dict:
    """`{(N, strategy): (train step, batches)}` for every size and every strategy that fits."""
    cells = {}
    for n in sizes:
        batches = zipf_id_batches(n, args.batch_size, args.num_batches, seed=n)
        catalogue = tfn.negatives.Catalogue(np.arange(n, dtype=np.int64))
        for strategy in STRATEGIES:
            if strategy == "full_softmax" and full_softmax_too_big(n, args):
                continue
            model = TwoTower(
                tf.keras.layers.Embedding(NUM_USERS, args.dim),
                tf.keras.layers.Embedding(n, args.dim),
                make_task(strategy, catalogue, args),
            )
            model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
            cells[n, strategy] = (tf.function(model.train_step), batches)
    return cells


def time_cells(cells: dict, args) -> dict:
    """Step times (s) of every cell after warmup, all cells interleaved round-robin."""
    times = {key: [] for key in cells}
    for i in range(args.warmup + args.steps):
        for key, (step, batches) in cells.items():
            batch = batches[i % len(batches)]
            start = time.perf_counter()
            logs = step(batch)
            loss = float(logs["loss"])  # wait for the step
            if i >= args.warmup:
                times[key].append(time.perf_counter() - start)
            if not math.isfinite(loss):
                raise RuntimeError(f"{key[1]} at N={key[0]}: loss {loss}")
        if i == 0:
            print(f"first step of every cell done (tracing, XLA) {peak_gb()}", flush=True)
    return times


def available_gb() -> float:
    """MemAvailable from /proc/meminfo in GB (inf where unreadable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return math.inf


def full_softmax_limit_gb(args) -> float:
    return min(args.max_full_softmax_gb, 0.8 * available_gb())


def full_softmax_too_big(num_items: int, args) -> bool:
    peak = FULL_SOFTMAX_PEAK_FACTOR * logits_gb(num_items, args.batch_size)
    return peak > full_softmax_limit_gb(args)


def peak_gb() -> str:
    return f"(peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GB)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--uniform_count", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--num_batches", type=int, default=8, help="distinct batches, cycled")
    parser.add_argument("--num_buckets", type=int, default=2**18, help="estimator buckets")
    parser.add_argument(
        "--max_full_softmax_gb",
        type=float,
        default=12.0,
        help="skip the full softmax where its estimated peak memory (5x logits) exceeds this",
    )
    args = parser.parse_args()
    limit = full_softmax_limit_gb(args)

    start = time.perf_counter()
    cells = build_cells(args.sizes, args)
    times = time_cells(cells, args)
    median = {n: {} for n in args.sizes}
    fastest = {n: {} for n in args.sizes}
    for (n, strategy), t in times.items():
        median[n][strategy] = statistics.median(t)
        fastest[n][strategy] = min(t)
    print(f"timed in {time.perf_counter() - start:.1f} s {peak_gb()}")
    print(
        f"\nbatch {args.batch_size}, dim {args.dim}, int64 ids, Adagrad(0.1), "
        f"{args.steps} steps each after {args.warmup} warmup, all cells interleaved"
    )
    for title, table in (("median ms/step", median), ("fastest step, ms", fastest)):
        print(f"{title:18s}" + "".join(f"{f'N={n:,}':>16s}" for n in args.sizes))
        for strategy in STRATEGIES:
            row = [
                f"{1000 * table[n][strategy]:16.1f}"
                if strategy in table[n]
                else f"{'skipped':>16s}"
                for n in args.sizes
            ]
            print(f"  {strategy:16s}" + "".join(row))
    for n in args.sizes:
        if "full_softmax" not in median[n]:
            print(
                f"full_softmax at N={n:,}: skipped (would need ~"
                f"{logits_gb(n, args.batch_size):.1f} GB for logits, "
                f"~{FULL_SOFTMAX_PEAK_FACTOR * logits_gb(n, args.batch_size):.0f} GB at peak "
                f"with gradients and softmax temporaries; limit {limit:.1f} GB)"
            )

    small, large = min(args.sizes), max(args.sizes)
    print()
    if small != large:
        for strategy, target in (("in_batch+uniform", " (target <= 1.20)"), ("in_batch", "")):
            ratio = median[large][strategy] / median[small][strategy]
            best = fastest[large][strategy] / fastest[small][strategy]
            print(
                f"{strategy:18s} N={large:,} / N={small:,} = {ratio:.3f}{target}; "
                f"fastest steps: {best:.3f}"
            )
        full = sorted(n for n in args.sizes if "full_softmax" in median[n])
        for lo, hi in zip(full, full[1:]):
            ratio = median[hi]["full_softmax"] / median[lo]["full_softmax"]
            exponent = math.log(ratio) / math.log(hi / lo)
            print(
                f"full_softmax       N={hi:,} / N={lo:,} = {ratio:.2f} "
                f"(time ~ N^{exponent:.2f} over a {hi / lo:g}x larger catalogue)"
            )
    for n in args.sizes:
        row = median[n]
        parts = [f"uniform / in_batch {row['in_batch+uniform'] / row['in_batch']:.2f}"]
        if "full_softmax" in row:
            parts.append(f"full / in_batch {row['full_softmax'] / row['in_batch']:.1f}")
        print(f"N={n:>9,}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
