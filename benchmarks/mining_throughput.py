"""Hard-negative mining throughput: `ScaNNMiner` against `BruteForceMiner`, 10^5 and 10^6 items.

All in one process, on the same catalogue and the same anchors, window `[100, 500)` (EBR's):

* item-side mining throughput (anchors/s) of `BruteForceMiner` and of `ScaNNMiner` under a few
  ScaNN settings (`CONFIGS`, the library defaults first; a setting equal at a size to one
  already measured is not measured again), anchors = random catalogue items, passed with
  `anchor_rows` so each drops itself (the search asks for `k = max_rank + 1` neighbours);
* the raw batched ScaNN search (`ScaNNSearch.search`, same index, same `k`), timed
  alternately with the miner: miner / search is what the miner keeps of the search's speed;
* ScaNN / brute-force throughput;
* recall against brute force: the share of the exact window's entries that the ScaNN window
  also holds, and of the exact top-`max_rank` list (anchor dropped) that ScaNN's holds;
* the cost of the miner's numpy window filtering (`Miner._window`) alone, on the searched
  lists: item-side (drop the anchor) and query-side (drop `--excluded` random rows per anchor,
  as known positives), against the search time;
* a full refresh of the 10^5 catalogue (`RefreshHardNegatives.refresh()`: embed, build the
  index, mine every item, assign the table), with the defaults and with `RECOMMENDED`.

ScaNN settings of one size are built first, then timed round-robin (mine, raw search, window
filtering of each in turn); each time is the best of `--reps` (other processes share the
machine; the best is the least disturbed). Brute force mines once.

Catalogue: `dim` 64 embeddings from a two-level Gaussian mixture (32 topics, 2048 subtopics of
Dirichlet(1) sizes, item noise as large as the subtopic spread: cosine ~0.6 within a subtopic,
~0.4 within a topic, ~0 across), directions scaled by log-normal(0, 0.5) norms (dot-product
search, popular items long). The 10^5 and 10^6 catalogues sample the same mixture. Candidate
tower: `lambda ids: tf.gather(table, ids)` over a `tf.constant` table, catalogue `np.arange(N)`.

Brute force at 10^6 mines fewer anchors (`--bf_anchors`, the first ones of the ScaNN anchors);
its throughput is still anchors/s, and recall is measured on those anchors.

Targets: miner >= 0.8 x raw search; ScaNN / brute force >= 10 at 10^6; window recall >= 0.95;
refresh of 10^5 items in seconds.

Usage: python benchmarks/mining_throughput.py [--sizes 100000 1000000] [--anchors 8192]
           [--bf_anchors 4096 1024] [--reps 5] [--configs defaults dpb=1 ...]
"""

import argparse
import math
import resource
import time
from typing import Callable, NamedTuple

import tfrs_negatives as tfn

import numpy as np
import tensorflow as tf

# ScaNN settings measured: keyword arguments of `ScaNNMiner`, and `search_points`, which sets
# `leaves_to_search = max(leaves // 10, ceil(search_points / (N / leaves)))` (search at least
# that many points; the default tenth of the leaves is 10,000 points at 10^5, 100,000 at 10^6).
CONFIGS = {
    "defaults": {},
    "reorder=2000": {"reorder": 2000},
    "dpb=1": {"dimensions_per_block": 1},
    "pts=20k": {"search_points": 20_000},
    "pts=20k,reorder=2000": {"search_points": 20_000, "reorder": 2000},
    "pts=20k,dpb=1": {"search_points": 20_000, "dimensions_per_block": 1},
    "pts=20k,dpb=1,reorder=2000": {
        "search_points": 20_000,
        "dimensions_per_block": 1,
        "reorder": 2000,
    },
}
RECOMMENDED = "pts=20k,dpb=1"


def make_catalogue(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """`[n, dim]` float32: two-level Gaussian mixture directions, log-normal norms."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((32, dim), dtype=np.float32)
    subtopics = topics[rng.integers(0, 32, 2048)]
    subtopics += 0.6 * rng.standard_normal((2048, dim), dtype=np.float32)
    weights = rng.dirichlet(np.ones(2048))
    items = subtopics[rng.choice(2048, n, p=weights)]
    items += rng.standard_normal((n, dim), dtype=np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    items *= rng.lognormal(0.0, 0.5, size=(n, 1)).astype(np.float32)
    return items


def scann_options(name: str, n: int) -> dict:
    """`ScaNNMiner` keyword arguments of setting `name` for `n` items."""
    options = dict(CONFIGS[name])
    points = options.pop("search_points", None)
    leaves = max(1, round(math.sqrt(n)))  # ScaNNSearch's default num_leaves
    search = min(leaves, max(leaves // 10, math.ceil((points or 0) / (n / leaves))))
    if search > max(1, leaves // 10):  # not ScaNNSearch's default
        options["leaves_to_search"] = search
    return options


class Recording:
    """Wraps a search and keeps what it found (the exact top-k lists of brute force)."""

    def __init__(self, search) -> None:
        self.inner = search
        self.found = []

    def search(self, queries, k):
        indices, scores = self.inner.search(queries, k)
        self.found.append(indices)
        return indices, scores


def timed(fn, *args, **kwargs):
    """`(seconds, fn(*args, **kwargs))`."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def gather_tower(table: np.ndarray):
    """Candidate tower `ids -> table[ids]` over a `tf.constant` copy of `table` (a real tower
    holds variables; gathering from the numpy array would convert all of it on every call)."""
    table = tf.constant(table)
    return lambda ids: tf.gather(table, ids)


def top_lists(found: np.ndarray, rows: np.ndarray, m: int) -> list:
    """The first `m` neighbours of each anchor other than itself."""
    return [f[(f != r) & (f >= 0)][:m] for f, r in zip(found, rows)]


def recall(approx: list, exact: list) -> float:
    """Share of the exact entries (pooled over anchors) that the approximate lists hold."""
    hits = sum(len(np.intersect1d(a[a >= 0], e[e >= 0])) for a, e in zip(approx, exact))
    return hits / max(1, sum(int((e >= 0).sum()) for e in exact))


class Measured(NamedTuple):
    """One catalogue measured: `[N, dim]` embeddings, their ids `np.arange(N)`, the candidate
    tower over them (`gather_tower(table)`) and the `[A]` anchor rows mined."""

    table: np.ndarray
    ids: np.ndarray
    tower: Callable
    rows: np.ndarray


def brute_force(catalogue: Measured, args) -> dict:
    ids, tower, rows, table = catalogue.ids, catalogue.tower, catalogue.rows, catalogue.table
    miner = tfn.mining.BruteForceMiner(ids, args.min_rank, args.max_rank)
    index_time, _ = timed(miner.index, tower)
    for size in (8, 16):  # trace the search (reduce_retracing: the 2nd trace is generic)
        miner.mine(table[rows[:size]], anchor_rows=rows[:size])
    recording = miner.search = Recording(miner.search)
    seconds, (window, counts) = timed(miner.mine, table[rows], anchor_rows=rows)
    found = np.concatenate(recording.found)
    return {
        "index": index_time,
        "rate": len(rows) / seconds,
        "window": window,
        "counts": counts,
        "top": top_lists(found, rows, args.max_rank),
    }


def scann_settings(names, catalogue: Measured, reference, args) -> dict:
    """Builds one `ScaNNMiner` per distinct setting, then times them round-robin."""
    ids, tower, rows, table = catalogue.ids, catalogue.tower, catalogue.rows, catalogue.table
    n = len(ids)
    anchors = table[rows]
    k = min(n, args.max_rank + 1)  # what Miner.mine asks for with anchor_rows
    rng = np.random.default_rng(1)
    excluded = [rng.choice(n, args.excluded, replace=False) for _ in rows]
    miners, results = {}, {}
    first = {}  # resolved options -> the first setting that has them
    measured = {}  # setting -> the setting measured for it
    for name in names:
        key = tuple(sorted(scann_options(name, n).items()))
        measured[name] = first.setdefault(key, name)
        if measured[name] != name:
            continue
        miners[name] = tfn.mining.ScaNNMiner(
            ids, args.min_rank, args.max_rank, **scann_options(name, n)
        )
        build, _ = timed(miners[name].index, tower)
        miners[name].search.search(anchors[:256], k)  # warm-up
        results[name] = {"build": build, "mine": [], "search": [], "window": [], "excl": []}
    for _ in range(args.reps):
        for name, miner in miners.items():
            r = results[name]
            seconds, (r["neighbours"], _) = timed(miner.mine, anchors, anchor_rows=rows)
            r["mine"].append(seconds)
            seconds, (r["found"], _) = timed(miner.search.search, anchors, k)
            r["search"].append(seconds)
            r["window"].append(timed(miner._window, r["found"], rows, None)[0])
            r["excl"].append(timed(miner._window, r["found"], None, excluded)[0])
    nbf = len(reference["top"])
    for r in results.values():
        search = min(r["search"])
        found = r.pop("found")
        r.update(
            rate=len(rows) / min(r["mine"]),
            search_rate=len(rows) / search,
            speedup=len(rows) / min(r["mine"]) / reference["rate"],
            window_share=min(r["window"]) / search,
            excluded_share=min(r["excl"]) / search,
            window_recall=recall(list(r.pop("neighbours")[:nbf]), list(reference["window"])),
            top_recall=recall(top_lists(found[:nbf], rows[:nbf], args.max_rank), reference["top"]),
        )
    return {name: (measured[name], results[measured[name]]) for name in names}


def refresh_time(name: str, table: np.ndarray, args) -> float:
    """Seconds of one `RefreshHardNegatives.refresh()` of an item-side table."""
    ids = np.arange(len(table))
    miner = tfn.mining.ScaNNMiner(
        ids, args.min_rank, args.max_rank, **scann_options(name, len(ids))
    )
    hard = tfn.mining.HardNegativeTable(ids, miner.window)
    callback = tfn.callbacks.RefreshHardNegatives(
        miner, hard, gather_tower(table), refresh_at_start=False
    )
    if not callback.refresh():
        raise RuntimeError("The refresh failed (see the warning).")
    return callback.timings[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--anchors", type=int, default=8192)
    parser.add_argument(
        "--bf_anchors", type=int, nargs="+", default=[4096, 1024], help="one per size"
    )
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--min_rank", type=int, default=100)
    parser.add_argument("--max_rank", type=int, default=500)
    parser.add_argument("--excluded", type=int, default=20)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--refresh_size", type=int, default=100_000)
    parser.add_argument("--refresh_reps", type=int, default=2)
    args = parser.parse_args()
    bf_anchors = dict(zip(args.sizes, args.bf_anchors + args.bf_anchors[-1:] * len(args.sizes)))

    print(
        f"item-side mining, dim {args.dim}, window [{args.min_rank}, {args.max_rank}), "
        f"k = {args.max_rank + 1}, {args.anchors} anchors, best of {args.reps}"
    )
    results = {}
    for n in args.sizes:
        table = make_catalogue(n, args.dim)
        ids = np.arange(n)
        rows = np.random.default_rng(n).choice(n, min(n, args.anchors), replace=False)
        nbf = min(len(rows), bf_anchors[n])
        catalogue = Measured(table, ids, gather_tower(table), rows)
        bf = brute_force(catalogue._replace(rows=rows[:nbf]), args)
        full = float((bf["counts"] == args.max_rank - args.min_rank).mean())
        print(f"\nN = {n:,}: {round(math.sqrt(n))} leaves, brute force on {nbf} anchors")
        print(
            f"  brute force: index {bf['index']:.1f} s, {bf['rate']:,.0f} anchors/s "
            f"(windows full: {full:.0%})"
        )
        print(
            f"  {'ScaNN setting':28s} {'build':>6s} {'miner a/s':>10s} {'search a/s':>10s} "
            f"{'min/srch':>8s} {'vs BF':>6s} {'win rec':>7s} {'top rec':>7s} "
            f"{'_window':>7s} {'+excl':>6s}"
        )
        settings = scann_settings(args.configs, catalogue, bf, args)
        for name, (measured, r) in settings.items():
            results[n, name] = r
            if measured != name:
                print(f"  {name:28s} = {measured} at this size")
                continue
            print(
                f"  {name:28s} {r['build']:5.1f}s {r['rate']:10,.0f} {r['search_rate']:10,.0f} "
                f"{r['rate'] / r['search_rate']:8.2f} {r['speedup']:5.0f}x "
                f"{r['window_recall']:7.3f} {r['top_recall']:7.3f} "
                f"{r['window_share']:7.1%} {r['excluded_share']:6.1%}"
            )
        del table, catalogue, bf
    print(
        "  (min/srch: miner / raw search throughput; _window: Miner._window item-side, +excl: "
        f"query-side with {args.excluded} excluded per anchor, as shares of the search time)"
    )

    table = make_catalogue(args.refresh_size, args.dim)
    print(
        f"\nfull refresh of {args.refresh_size:,} items (embed, index, mine every item, assign), "
        f"best of {args.refresh_reps}"
    )
    refresh = {name: [] for name in dict.fromkeys(["defaults", RECOMMENDED])}
    for _ in range(args.refresh_reps):
        for name, seconds in refresh.items():
            seconds.append(refresh_time(name, table, args))
    refresh = {name: min(seconds) for name, seconds in refresh.items()}
    for name, seconds in refresh.items():
        print(f"  {name:28s} {seconds:6.1f} s")

    print("\ntargets (miner/search >= 0.8, window recall >= 0.95, vs BF >= 10x at the largest N)")
    for name in args.configs:
        checks = []
        for n in args.sizes:
            r = results[n, name]
            checks.append(
                f"N={n:.0e}: {r['rate'] / r['search_rate']:.3f} "
                f"{'ok' if r['rate'] >= 0.8 * r['search_rate'] else 'MISS'}, "
                f"{r['window_recall']:.3f} {'ok' if r['window_recall'] >= 0.95 else 'MISS'}"
            )
        speedup = results[max(args.sizes), name]["speedup"]
        checks.append(f"{speedup:.0f}x {'ok' if speedup >= 10 else 'MISS'}")
        print(f"  {name:28s} " + "; ".join(checks))
    for name, seconds in refresh.items():
        print(f"  refresh {name}: {seconds:.1f} s {'ok' if seconds < 60 else 'MISS'}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak:.1f} GB")


if __name__ == "__main__":
    main()
