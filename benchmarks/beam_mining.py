"""Sharded mining on Apache Beam against the in-process miners and FAISS, on one catalogue.

All in one process, the same clustered catalogue (`mining_throughput.make_catalogue`: dim 64,
two-level Gaussian mixture, log-normal norms) and the same item-side anchors (random
catalogue items, each dropping itself), window `[100, 500)` (EBR's):

* `beam.mine_windows` (`--indexes`: an exact index per shard, and a ScaNN index per shard
  built once, saved and loaded by the searchers) on the DirectRunner with 1 worker and with
  2 worker processes (`multi_processing`): anchors/s of the whole pipeline (reading and
  sharding the catalogue, building the shard indexes, searching, merging, writing), and its
  window recall;
* the in-process `BruteForceMiner` (the reference window) and `ScaNNMiner` with
  `mining_throughput.RECOMMENDED` settings: anchors/s of `mine()` once indexed, recall;
* FAISS (`faiss-cpu`, `IndexIVFFlat`, inner product, sqrt(N) lists), the peer a user might
  pick instead: the smallest `nprobe` of a doubling series reaching ScaNN's window recall,
  its anchors/s and recall.

Window recall: the share of the brute-force window's entries that a method's window holds.
Writing the TFRecord files is timed apart (it is the upstream `embed` step's work).

Usage: python benchmarks/beam_mining.py [--num_items 1000000] [--anchors 2000]
           [--num_shards 8] [--workers 1 2] [--indexes exact scann]
"""

import argparse
import math
import os
import tempfile
import time

import tfrs_negatives as tfn  # noqa: F401  (Keras 2 before TensorFlow loads)
from tfrs_negatives.beam import mine_windows
from tfrs_negatives.beam.records import example_bytes
from tfrs_negatives.mining import BruteForceMiner, ScaNNMiner

import numpy as np
import tensorflow as tf
from mining_throughput import RECOMMENDED, make_catalogue, scann_options

WINDOW = (100, 500)


def write_embedded(path: str, ids: np.ndarray, embeddings: np.ndarray) -> None:
    """TFRecord of `id`, `embedding` records."""
    with tf.io.TFRecordWriter(path) as writer:
        for item_id, embedding in zip(ids.tolist(), embeddings):
            example = tf.train.Example.FromString(example_bytes(id=[item_id]))
            example.features.feature["embedding"].float_list.value.extend(embedding.tolist())
            writer.write(example.SerializeToString())


def read_windows(prefix: str) -> dict:
    """`{anchor: [ids]}` of a mined output."""
    windows = {}
    for path in tf.io.gfile.glob(f"{prefix}-*-of-*"):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            windows[feature["anchor"].int64_list.value[0]] = feature["negatives"].int64_list.value
    return windows


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact window's entries present in the found window."""
    return float(np.mean([len(np.intersect1d(f, e)) / len(e) for f, e in zip(found, exact)]))


def in_process(items: np.ndarray, rows: np.ndarray, miner) -> tuple:
    """`(windows [A, W] rows, anchors/s of mine())` of a library miner, indexed first."""
    table = tf.constant(items)
    miner.index(lambda ids: tf.gather(table, ids))
    start = time.perf_counter()
    windows, _ = miner.mine(items[rows], anchor_rows=rows)
    return windows, len(rows) / (time.perf_counter() - start)


def faiss_windows(items, rows, target, k):
    """`(windows, anchors/s, nprobe)` of FAISS IVF: the first nprobe reaching `target` recall."""
    import faiss

    lists = round(math.sqrt(len(items)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(items.shape[1]), items.shape[1], lists,
                               faiss.METRIC_INNER_PRODUCT)  # fmt: skip
    index.train(items)
    index.add(items)
    best = None
    for nprobe in (2**i for i in range(1, 12)):
        index.nprobe = min(nprobe, lists)
        start = time.perf_counter()
        _, found = index.search(items[rows], k + 1)
        rate = len(rows) / (time.perf_counter() - start)
        windows = np.stack([f[f != r][WINDOW[0] : WINDOW[1]] for f, r in zip(found, rows)])
        best = (windows, rate, index.nprobe)
        if target(windows) or index.nprobe == lists:
            return best
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_items", type=int, default=1_000_000)
    parser.add_argument("--anchors", type=int, default=2000)
    parser.add_argument("--num_shards", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--indexes", nargs="+", default=["exact", "scann"])
    args = parser.parse_args()
    items = make_catalogue(args.num_items)
    rows = np.random.default_rng(1).choice(args.num_items, args.anchors, replace=False)
    ids = np.arange(args.num_items, dtype=np.int64)
    root = tempfile.mkdtemp(prefix="beam_mining-")
    start = time.perf_counter()
    for shard in range(args.num_shards):
        write_embedded(os.path.join(root, f"catalogue-{shard}"), ids[shard :: args.num_shards],
                       items[shard :: args.num_shards])  # fmt: skip
    write_embedded(os.path.join(root, "anchors"), ids[rows], items[rows])
    written = time.perf_counter() - start
    print(f"{args.num_items} items, {args.anchors} anchors, window {WINDOW}, "
          f"{args.num_shards} shards; files written in {written:.1f} s")  # fmt: skip
    exact, exact_rate = in_process(items, rows, BruteForceMiner(ids, *WINDOW))
    results = {"BruteForceMiner (in-process)": (1.0, exact_rate)}
    for index in args.indexes:
        for workers in args.workers:
            prefix = os.path.join(root, f"mined-{index}-{workers}", "windows")
            options = [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
            start = time.perf_counter()
            mine_windows(os.path.join(root, "catalogue-*"), os.path.join(root, "anchors"),
                         prefix, WINDOW, args.num_shards, index, pipeline_args=options)  # fmt: skip
            rate = args.anchors / (time.perf_counter() - start)
            mined = read_windows(prefix)
            results[f"beam {index}, {workers} worker(s)"] = (
                recall(np.stack([mined[r] for r in rows]), exact), rate)  # fmt: skip
    scann = ScaNNMiner(ids, *WINDOW, **scann_options(RECOMMENDED, args.num_items))
    found, rate = in_process(items, rows, scann)
    results[f"ScaNNMiner {RECOMMENDED} (in-process)"] = (recall(found, exact), rate)
    target = results[f"ScaNNMiner {RECOMMENDED} (in-process)"][0]
    windows, rate, nprobe = faiss_windows(items, rows, lambda w: recall(w, exact) >= target,
                                          WINDOW[1])  # fmt: skip
    results[f"FAISS IVF{round(math.sqrt(args.num_items))} nprobe={nprobe}"] = (
        recall(windows, exact), rate)  # fmt: skip
    base = results[f"beam {args.indexes[0]}, {args.workers[0]} worker(s)"][1]
    print(f"{'method':44s} {'recall':>7s} {'anchors/s':>10s} {'/ beam 1':>9s}")
    for name, (window_recall, rate) in results.items():
        print(f"{name:44s} {window_recall:7.4f} {rate:10.1f} {rate / base:9.2f}")


if __name__ == "__main__":
    main()
