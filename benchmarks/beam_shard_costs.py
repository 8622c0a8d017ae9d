"""What one catalogue shard of `tfrs-negatives mine` costs, the inputs of the README's cost model.

For shards of `--sizes` items (the clustered catalogue of `mining_throughput.make_catalogue`,
dim 64) this times, in one process, the steps a Beam worker runs on a shard:

* `shard_index.save_shard` with `index="exact"` and `"scann"` (build, serialize, write),
  with the bytes written;
* `ShardIndex` loading (read, `load_searcher`);
* `ShardIndex.top` for `--anchors` anchors of depth 501 (window [100, 500) plus the anchor
  itself): milliseconds per anchor, and the ScaNN/exact speed ratio;

and the ScaNN shard's top-501 recall against the exact shard's (the same anchors). The peer
is the exact index (every item scored, float64), on the same anchors.

Usage: python benchmarks/beam_shard_costs.py [--sizes 100000 1000000] [--anchors 1000]
"""

import argparse
import os
import tempfile
import time

import tfrs_negatives as tfn  # noqa: F401  (Keras 2 before TensorFlow loads)
from tfrs_negatives.beam import shard_index

import numpy as np
from mining_throughput import make_catalogue

DEPTH = 501


def _bytes_under(directory: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(directory)
        for name in names
    )


def shard_costs(items: np.ndarray, anchors: np.ndarray, kind: str, root: str) -> dict:
    """Seconds to build and to load one shard, ms per anchor searched, bytes, the top ids."""
    ids = np.arange(len(items), dtype=np.int64)
    directory = os.path.join(root, kind)
    start = time.perf_counter()
    shard_index.save_shard(directory, items, ids, kind, DEPTH)
    built = time.perf_counter() - start
    start = time.perf_counter()
    index = shard_index.ShardIndex(directory, kind)
    loaded = time.perf_counter() - start
    start = time.perf_counter()
    found = index.top(anchors, [DEPTH] * len(anchors))
    searched = time.perf_counter() - start
    return {
        "build_s": built,
        "load_s": loaded,
        "ms_per_anchor": 1000 * searched / len(anchors),
        "bytes": _bytes_under(directory),
        "top": [set(part.ids.tolist()) for part in found],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--anchors", type=int, default=1000)
    args = parser.parse_args()
    print(f"{'shard items':>11s} {'index':>6s} {'build s':>8s} {'load s':>7s} "
          f"{'ms/anchor':>10s} {'MB':>8s} {'recall':>7s} {'speed vs exact':>15s}")  # fmt: skip
    for size in args.sizes:
        items = make_catalogue(size)
        rows = np.random.default_rng(1).choice(size, args.anchors, replace=False)
        with tempfile.TemporaryDirectory() as root:
            costs = {k: shard_costs(items, items[rows], k, root) for k in ("exact", "scann")}
        for kind, row in costs.items():
            overlap = np.mean(
                [len(a & b) / len(b) for a, b in zip(row["top"], costs["exact"]["top"])]
            )
            speed = costs["exact"]["ms_per_anchor"] / row["ms_per_anchor"]
            print(f"{size:11d} {kind:>6s} {row['build_s']:8.1f} {row['load_s']:7.2f} "
                  f"{row['ms_per_anchor']:10.3f} {row['bytes'] / 1e6:8.1f} {overlap:7.4f} "
                  f"{speed:15.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
