"""Quality of `StreamingFrequencyEstimator` against exact frequencies, and its memory.

Three parts, printed in one run:

1. Zipf synthetic stream: a catalogue of `--num_items` items with Zipf(`--zipf_exponent`)
   popularity, `--steps` i.i.d. batches of `--batch_size`. The batches go through a
   `StreamingFrequencyEstimator` (`training=True`, inside a `tf.function`); for every item
   that appeared, its `q` is compared with the exact empirical frequency
   `count / total examples`: Pearson of q, Pearson of log q, Spearman, median ratio
   `q / exact`, share of items with `q >= 0.99`; for the head (top 1% of the catalogue by
   count) and overall. Target: correlation >= 0.95 with the exact frequencies.
2. MovieLens 100K training stream (if `--movielens_dir` exists): the TFRS tutorial's 80%
   split (rows shuffled by a seeded permutation, seed 42, first 80,000), movie titles as
   ids, batch 8192, 1024 and 256, 3 epochs in the same order (the tutorial caches the
   shuffled batches): Pearson of log q against log exact and share of titles with
   `q >= 0.99`.
3. Memory: the estimator's variable sizes in bytes after streaming 10^3 and 10^6
   distinct ids with the same `num_buckets`.

Parts 1 and 2 also run the estimator "as published" (Yi et al. 2019, Algorithm 2) as a
small NumPy reference: time in steps, one observation per step for every id present in
the batch however often it occurs, `B <- (1 - lr) B + lr * gap` with the first sighting
setting `B` to the gap since step 0, `q = 1 / B` (the probability that the item appears
in a batch, at most 1). It keeps one slot per id (no hashing, so no collisions). Its `q`
is per step; the ratio column divides it by the batch size to put it per example.

Usage:
    python benchmarks/estimator_quality.py
    python benchmarks/estimator_quality.py --num_items 10000 --zipf_exponent 1.0 \\
        --batch_size 1024 --steps 200 --movielens_dir /work/shared/data/ml-100k
    python benchmarks/estimator_quality.py --learning_rate 0.01 --num_buckets 65536
"""

import argparse
import os
import time
from collections.abc import Sequence

import numpy as np
from scipy import stats

# isort: off
import tfrs_negatives as tfn  # before tensorflow: sets TF_USE_LEGACY_KERAS=1 (Keras 2)
import tensorflow as tf

# isort: on

TARGET = 0.95
SATURATED = 0.99


def zipf_stream(
    num_items: int, exponent: float, batch_size: int, steps: int, seed: int
) -> list[np.ndarray]:
    """I.i.d. batches of item ids `0 .. num_items - 1` with Zipf popularity.

    Args:
      num_items: Catalogue size; item `i` has weight `(i + 1) ** -exponent`.
      exponent: Zipf exponent `s`.
      batch_size: Ids per batch.
      steps: Number of batches.
      seed: Seed of the draws.

    Returns:
      `steps` int64 arrays of shape `[batch_size]`.
    """
    rng = np.random.default_rng(seed)
    weights = np.arange(1, num_items + 1, dtype=np.float64) ** -exponent
    weights /= weights.sum()
    return [rng.choice(num_items, batch_size, p=weights).astype(np.int64) for _ in range(steps)]


def movielens_train_titles(movielens_dir: str) -> np.ndarray:
    """Title ids of the TFRS tutorial's MovieLens 100K training split, in stream order.

    Rows of `u.data` are shuffled with `np.random.default_rng(42).permutation` and the
    first 80,000 kept (the tutorial's 80/20 split, with NumPy's shuffle in place of
    `tf.data`'s). Items are keyed by title as in the tutorial: the few movies that share
    a title share an id.

    Args:
      movielens_dir: Folder holding `u.data` and `u.item`.

    Returns:
      `[80000]` int64 title indices (into the sorted distinct titles).
    """
    ratings = np.loadtxt(os.path.join(movielens_dir, "u.data"), dtype=np.int64, delimiter="\t")
    titles = {}
    with open(os.path.join(movielens_dir, "u.item"), encoding="latin-1") as f:
        for line in f:
            fields = line.split("|")
            titles[int(fields[0])] = fields[1]
    index = {title: i for i, title in enumerate(sorted(set(titles.values())))}
    title_of_item = np.zeros(max(titles) + 1, np.int64)
    for item, title in titles.items():
        title_of_item[item] = index[title]
    order = np.random.default_rng(42).permutation(len(ratings))
    return title_of_item[ratings[order[:80_000], 1]]


def streaming_q(
    batches: Sequence[np.ndarray], num_ids: int, **estimator_kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """Streams batches through a `StreamingFrequencyEstimator` and reads every id's `q`.

    Args:
      batches: int64 id arrays, fed in order with `training=True` in a `tf.function`.
      num_ids: Ids `0 .. num_ids - 1` are read at the end.
      **estimator_kwargs: Passed to the estimator (its defaults otherwise).

    Returns:
      `[num_ids]` float64 probabilities read after the stream, and the float64 `q`
      the training calls returned, one per example in stream order (the `q` a
      log-Q correction uses).
    """
    estimator = tfn.estimators.StreamingFrequencyEstimator(**estimator_kwargs)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
    def step(ids):
        return estimator(ids, training=True)

    returned = [step(tf.constant(batch)).numpy() for batch in batches]
    q = estimator.probability(tf.range(num_ids, dtype=tf.int64))
    return q.numpy().astype(np.float64), np.concatenate(returned).astype(np.float64)


def published_q(batches: Sequence[np.ndarray], num_ids: int, learning_rate: float) -> np.ndarray:
    """Yi et al. 2019, Algorithm 2, as published: per-step `q` from gaps in steps.

    One slot per id (no hashing). At step `t` (from 1), every id present in the batch,
    once however often it occurs, updates `B <- (1 - lr) B + lr (t - A)` (the first
    sighting sets `B = t`) and `A <- t`. Ids never seen get `q = 0`.

    Args:
      batches: int64 id arrays in `[0, num_ids)`, in stream order.
      num_ids: Number of ids.
      learning_rate: `lr`.

    Returns:
      `[num_ids]` float64 `q = min(1 / B, 1)`: the estimated chance of being in a batch.
    """
    last = np.zeros(num_ids)
    gap = np.zeros(num_ids)
    seen = np.zeros(num_ids, bool)
    for t, batch in enumerate(batches, start=1):
        ids = np.unique(batch)
        elapsed = t - last[ids]
        gap[ids] = np.where(
            seen[ids], (1 - learning_rate) * gap[ids] + learning_rate * elapsed, elapsed
        )
        last[ids] = t
        seen[ids] = True
    q = np.zeros(num_ids)
    q[seen] = np.minimum(1.0 / gap[seen], 1.0)
    return q


def compare(q: np.ndarray, exact: np.ndarray, scale: float = 1.0) -> dict[str, float]:
    """Agreement of estimated and exact probabilities.

    Args:
      q: Estimated probabilities, all > 0.
      exact: Exact per-example frequencies, all > 0.
      scale: `q` is divided by it for the median ratio (per-step `q` to per example).

    Returns:
      Pearson of q, Pearson of log q, Spearman, median `q / scale / exact`, share of
      `q >= 0.99`, and the number of items.
    """
    return {
        "n": float(q.size),
        "pearson": float(np.corrcoef(q, exact)[0, 1]),
        "log_pearson": float(np.corrcoef(np.log(q), np.log(exact))[0, 1]),
        "spearman": float(stats.spearmanr(q, exact)[0]),
        "median_ratio": float(np.median(q / scale / exact)),
        "saturated": float(np.mean(q >= SATURATED)),
    }


def print_header() -> None:
    """Prints the column names of `print_row`."""
    print(
        f"  {'estimator':<22}{'items':<14}{'n':>7}{'pearson':>9}{'log-pear':>10}"
        f"{'spearman':>10}{'med q/ex':>10}{'q>=0.99':>9}"
    )


def print_row(name: str, subset: str, m: dict[str, float]) -> None:
    """Prints one line of metrics from `compare`, flagging correlations under target."""
    flag = "" if min(m["pearson"], m["log_pearson"], m["spearman"]) >= TARGET else "  < target"
    print(
        f"  {name:<22}{subset:<14}{int(m['n']):>7}{m['pearson']:>9.3f}{m['log_pearson']:>10.3f}"
        f"{m['spearman']:>10.3f}{m['median_ratio']:>10.3f}{m['saturated']:>9.1%}{flag}"
    )


def zipf_section(args: argparse.Namespace, estimator_kwargs: dict) -> None:
    """Part 1: streaming and as-published estimates on a Zipf stream vs exact counts."""
    print(
        f"== 1. Zipf(s={args.zipf_exponent}) stream: {args.num_items} items, batch "
        f"{args.batch_size}, {args.steps} steps ({args.batch_size * args.steps} examples)"
    )
    print(f"   target: correlation >= {TARGET} with exact frequencies (count / total examples)")
    start = time.perf_counter()
    batches = zipf_stream(
        args.num_items, args.zipf_exponent, args.batch_size, args.steps, args.seed
    )
    counts = np.bincount(np.concatenate(batches), minlength=args.num_items)
    exact = counts / counts.sum()
    appeared = counts > 0
    head = np.zeros(args.num_items, bool)
    head[np.argsort(-counts, kind="stable")[: max(1, args.num_items // 100)]] = True
    q_read, q_returned = streaming_q(batches, args.num_items, **estimator_kwargs)
    estimates = {
        "streaming (ours)": (q_read, 1.0),
        "as published (steps)": (
            published_q(batches, args.num_items, args.reference_learning_rate),
            float(args.batch_size),
        ),
    }
    print(f"   {appeared.sum()} of {args.num_items} items appeared; head = top 1% by count")
    print_header()
    for name, (q, scale) in estimates.items():
        for subset, mask in (("head (1%)", head & appeared), ("all appeared", appeared)):
            print_row(name, subset, compare(q[mask], exact[mask], scale))
    tail = appeared & (counts <= 5)
    for name, (q, scale) in estimates.items():
        print_row(name, "count <= 5", compare(q[tail], exact[tail], scale))
    ids = np.concatenate(batches)
    print_row("ours, q in training", "per example", compare(q_returned, exact[ids]))
    print(
        "   rows 'q in training': the q each training call returned for each example, "
        "against its item's exact frequency"
    )
    weights = np.arange(1, args.num_items + 1, dtype=np.float64) ** -args.zipf_exponent
    floor = compare(exact[appeared], weights[appeared] / weights.sum())
    print(
        f"   sampling noise: exact counts vs the true Zipf p, all appeared: log-pearson "
        f"{floor['log_pearson']:.3f}, spearman {floor['spearman']:.3f}"
    )
    print(f"   ({time.perf_counter() - start:.1f} s)")


def movielens_section(args: argparse.Namespace, estimator_kwargs: dict) -> None:
    """Part 2: the MovieLens 100K training stream at batch 8192, 1024 and 256, 3 epochs."""
    path = os.path.join(args.movielens_dir, "u.data")
    print(
        "\n== 2. MovieLens 100K training stream (80,000 ratings, titles as ids), "
        f"{args.epochs} epochs"
    )
    if not os.path.exists(path):
        print(f"   skipped: {path} not found (pass --movielens_dir)")
        return
    start = time.perf_counter()
    titles = movielens_train_titles(args.movielens_dir)
    num_ids = int(titles.max()) + 1
    counts = np.bincount(titles, minlength=num_ids)
    exact = counts / counts.sum()
    appeared = counts > 0
    print(f"   {appeared.sum()} distinct titles in the training split")
    print(
        "   as-published measured in DESIGN: 8192 -> 40% q>=0.99, log-corr 0.86; "
        "1024 -> 1%, 0.97; 256 -> 0%, 0.98"
    )
    print(
        f"  {'batch':>6}{'steps':>7}  {'estimator':<22}{'log-pear':>10}{'spearman':>10}"
        f"{'med q/ex':>10}{'q>=0.99':>9}"
    )
    for batch_size in args.movielens_batch_sizes:
        epoch = [titles[i : i + batch_size] for i in range(0, titles.size, batch_size)]
        batches = epoch * args.epochs
        estimates = {
            "streaming (ours)": (streaming_q(batches, num_ids, **estimator_kwargs)[0], 1.0),
            "as published (steps)": (
                published_q(batches, num_ids, args.reference_learning_rate),
                float(batch_size),
            ),
        }
        for name, (q, scale) in estimates.items():
            m = compare(q[appeared], exact[appeared], scale)
            flag = "" if m["log_pearson"] >= TARGET else "  < target"
            print(
                f"  {batch_size:>6}{len(batches):>7}  {name:<22}{m['log_pearson']:>10.3f}"
                f"{m['spearman']:>10.3f}{m['median_ratio']:>10.3f}{m['saturated']:>9.1%}{flag}"
            )
    print(f"   ({time.perf_counter() - start:.1f} s)")


def memory_section(estimator_kwargs: dict) -> None:
    """Part 3: variable bytes after streaming 10^3 and 10^6 distinct ids."""
    print("\n== 3. Memory: variable sizes after streaming n distinct ids (same num_buckets)")
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    for num_distinct in (10**3, 10**6):
        estimator = tfn.estimators.StreamingFrequencyEstimator(**estimator_kwargs)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def step(ids, estimator=estimator):
            return estimator(ids, training=True)

        ids = rng.choice(2**62, num_distinct, replace=False).astype(np.int64)
        for i in range(0, num_distinct, 65536):
            step(tf.constant(ids[i : i + 65536]))
        sizes = {v.name.split("/")[-1].split(":")[0]: v.numpy().nbytes for v in estimator.weights}
        occupied = int(np.count_nonzero(estimator.occurrences.numpy()))
        detail = ", ".join(f"{name} {size:,}" for name, size in sizes.items())
        print(
            f"  n = {num_distinct:>9,}: total {sum(sizes.values()):>11,} bytes ({detail}); "
            f"{occupied:,} of {estimator.occurrences.shape[0]:,} buckets occupied"
        )
    print(
        f"  (num_buckets={estimator.num_buckets}, num_hashes={estimator.num_hashes}: "
        f"{estimator.num_hashes} x {estimator.num_buckets} x (8 + 4 + 4) bytes + 8; "
        f"{time.perf_counter() - start:.1f} s)"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_items", type=int, default=10_000)
    parser.add_argument("--zipf_exponent", type=float, default=1.0)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--movielens_dir", default="/work/shared/data/ml-100k")
    parser.add_argument("--movielens_batch_sizes", type=int, nargs="+", default=[8192, 1024, 256])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--num_buckets",
        type=int,
        default=None,
        help="StreamingFrequencyEstimator num_buckets (default: its own).",
    )
    parser.add_argument(
        "--num_hashes",
        type=int,
        default=None,
        help="StreamingFrequencyEstimator num_hashes (default: its own).",
    )
    parser.add_argument(
        "--learning_rate",
        type=float,
        default=None,
        help="StreamingFrequencyEstimator learning_rate (default: its own).",
    )
    parser.add_argument(
        "--reference_learning_rate",
        type=float,
        default=0.05,
        help="Learning rate of the as-published NumPy reference.",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Runs the three parts."""
    args = parse_args(argv)
    estimator_kwargs = {
        key: getattr(args, key)
        for key in ("num_buckets", "num_hashes", "learning_rate")
        if getattr(args, key) is not None
    }
    defaults = tfn.estimators.StreamingFrequencyEstimator(**estimator_kwargs).get_config()
    print(
        "StreamingFrequencyEstimator("
        + ", ".join(f"{k}={defaults[k]}" for k in ("num_buckets", "num_hashes", "learning_rate"))
        + f"); as-published reference learning rate {args.reference_learning_rate}\n"
    )
    start = time.perf_counter()
    zipf_section(args, estimator_kwargs)
    movielens_section(args, estimator_kwargs)
    memory_section(estimator_kwargs)
    print(f"\ntotal {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
