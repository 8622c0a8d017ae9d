"""Export and serving of retrieval SavedModels: exact (`BruteForce`) against ScaNN.

For each catalogue size N (default 10^5 and 10^6 candidates of dimension 64), all in one run:

* export time of `tfrs_negatives.export.save_retrieval(..., index="exact")` and
  `index="scann"` (default ScaNN options), measured end to end: embedding the catalogue
  through the candidate tower in batches, building the index, calling it once, writing the
  SavedModel to a temporary directory and renaming it. Target: 10^6 under a minute on 2 cores;
* then, in a fresh Python process that loads both models with `load_retrieval` (as a
  server would): single-query latency (one user id per call of the `serving_default`
  signature, exact and ScaNN calls interleaved, median and p99 over `--single_queries`
  calls after warm-up), batched throughput (`--batch_size` user ids per call, median over
  `--batches` calls), and recall@10 of ScaNN against the exact model on
  `--recall_queries` users (the exact export is itself tested against NumPy).

Synthetic "trained" towers: `Embedding(N, 64)` over int64 item ids and
`Embedding(10^4, 64)` over int64 user ids, with two kinds of tables (`--data`, both by
default): `clustered` (1,000 Gaussian centres; each item or user is a centre plus noise of a
third of its scale: learned embeddings have structure that partitioning exploits) and
`gaussian` (i.i.d. Gaussian rows: no structure, the worst case for approximate search).

Usage: python benchmarks/export_serving.py [--sizes 100000 1000000] [--dim 64]
           [--data clustered gaussian] [--single_queries 300] [--batch_size 256]
           [--batches 10] [--recall_queries 2000] [--scann_options '{"num_leaves_to_search": 200}']
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow)
from tfrs_negatives.export import load_retrieval, save_retrieval

import numpy as np
import tensorflow as tf

NUM_USERS = 10_000
CLUSTERS = 1_000


def table(rows: int, dim: int, rng: np.random.Generator, centres, data: str):
    if data == "gaussian":
        return (rng.standard_normal((rows, dim), dtype=np.float32) / np.sqrt(dim)).astype(
            np.float32
        )
    picks = rng.integers(0, len(centres), rows)
    noise = rng.standard_normal((rows, dim), dtype=np.float32) / np.sqrt(dim) / 3
    return (centres[picks] + noise).astype(np.float32)


def towers(n: int, dim: int, data: str, seed: int = 0):
    """Built `Embedding` towers holding the synthetic tables (as after training)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim), dtype=np.float32) / np.sqrt(dim)
    query = tf.keras.layers.Embedding(NUM_USERS, dim, name="query_tower")
    item = tf.keras.layers.Embedding(n, dim, name="item_tower")
    query(tf.constant([0], tf.int64))
    item(tf.constant([0], tf.int64))
    query.set_weights([table(NUM_USERS, dim, rng, centres, data)])
    item.set_weights([table(n, dim, rng, centres, data)])
    return query, item


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, reset by exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def export(args, data: str) -> list:
    root = tempfile.mkdtemp(prefix="export_serving-")
    rows = []
    try:
        for n in args.sizes:
            query, item = towers(n, args.dim, data)
            ids = np.arange(n, dtype=np.int64)
            times = {}
            for index in ("exact", "scann"):
                start = time.perf_counter()
                save_retrieval(
                    query, ids, os.path.join(root, f"{n}-{index}"), index=index, k=args.k,
                    candidate_tower=item,
                    scann_options=json.loads(args.scann_options) if index == "scann" else None,
                )  # fmt: skip
                times[index] = time.perf_counter() - start
                print(f"{data} N={n:>9,}: exported {index:5s} in {times[index]:5.1f} s", flush=True)
            del query, item
            served = serve_in_fresh_process(root, n, args)
            served["export_s"] = times
            served["data"] = data
            served["size_mb"] = {
                index: directory_mb(os.path.join(root, f"{n}-{index}"))
                for index in ("exact", "scann")
            }
            rows.append(served)
            for index in ("exact", "scann"):
                shutil.rmtree(os.path.join(root, f"{n}-{index}"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def directory_mb(path: str) -> float:
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total / 2**20


def serve_in_fresh_process(root: str, n: int, args) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--_serve", root, "--sizes", str(n)]
    command += ["--single_queries", str(args.single_queries), "--batch_size", str(args.batch_size)]
    command += ["--batches", str(args.batches), "--recall_queries", str(args.recall_queries)]
    command += ["--k", str(args.k)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"serving process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def serve(args) -> dict:
    """Runs in the fresh process: loads both exports of one size and measures them."""
    n = args.sizes[0]
    start = time.perf_counter()
    models = {
        index: load_retrieval(os.path.join(args._serve, f"{n}-{index}")).signatures[
            "serving_default"
        ]
        for index in ("exact", "scann")
    }
    load_s = time.perf_counter() - start
    rng = np.random.default_rng(1)
    users = rng.integers(0, NUM_USERS, args.single_queries + 20, dtype=np.int64)
    latency = {"exact": [], "scann": []}
    for i, user in enumerate(users):
        query = tf.constant([user], tf.int64)
        for index, model in models.items():
            start = time.perf_counter()
            model(query=query)["ids"].numpy()
            if i >= 20:  # warm-up
                latency[index].append(time.perf_counter() - start)
    throughput = {}
    for index, model in models.items():
        batch = tf.constant(rng.integers(0, NUM_USERS, args.batch_size, dtype=np.int64))
        model(query=batch)["ids"].numpy()
        seconds = []
        for _ in range(args.batches):
            start = time.perf_counter()
            model(query=batch)["ids"].numpy()
            seconds.append(time.perf_counter() - start)
        throughput[index] = args.batch_size / statistics.median(seconds)
    recall_users = rng.choice(NUM_USERS, args.recall_queries, replace=False).astype(np.int64)
    found = {}
    for index, model in models.items():
        found[index] = np.concatenate(
            [
                model(query=tf.constant(chunk))["ids"].numpy()
                for chunk in np.array_split(recall_users, max(1, len(recall_users) // 250))
            ]
        )
    recall = float(
        np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found["scann"], found["exact"])])
    )
    return {
        "n": n,
        "load_s": load_s,
        "latency_ms": {
            index: {
                "median": 1e3 * statistics.median(values),
                "p99": 1e3 * float(np.percentile(values, 99)),
            }
            for index, values in latency.items()
        },
        "throughput_qps": throughput,
        "recall_at_k": recall,
        "serve_peak_rss_gb": peak_rss_gb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--single_queries", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--recall_queries", type=int, default=2000)
    parser.add_argument(
        "--data", nargs="+", choices=["clustered", "gaussian"], default=["clustered", "gaussian"]
    )
    parser.add_argument("--scann_options", default="{}", help="JSON dict for save_retrieval")
    parser.add_argument("--_serve", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._serve:
        print(json.dumps(serve(args)))
        return
    cores = len(os.sched_getaffinity(0))
    print(
        f"tensorflow {tf.__version__}, {cores} cores, dim {args.dim}, k {args.k}, "
        f"ScaNN options {args.scann_options} (defaults otherwise)",
        flush=True,
    )
    start = time.perf_counter()
    rows = [row for data in args.data for row in export(args, data)]
    print()
    print(
        f"{'data':9} | {'N':>9} | {'index':5} | {'export s':>8} | {'MB':>5} | "
        f"{'1-query ms p50/p99':>18} | {f'batch {args.batch_size} q/s':>13} | recall@{args.k}"
    )
    for row in rows:
        for index in ("exact", "scann"):
            lat = row["latency_ms"][index]
            recall = f"{row['recall_at_k']:.4f}" if index == "scann" else "1 (reference)"
            print(
                f"{row['data']:9} | {row['n']:>9,} | {index:5} | {row['export_s'][index]:8.1f} | "
                f"{row['size_mb'][index]:5.0f} | {lat['median']:8.2f} / {lat['p99']:7.2f} | "
                f"{row['throughput_qps'][index]:13,.0f} | {recall}"
            )
    for row in rows:
        speed = {
            "1-query": row["latency_ms"]["exact"]["median"] / row["latency_ms"]["scann"]["median"],
            "batched": row["throughput_qps"]["scann"] / row["throughput_qps"]["exact"],
        }
        print(
            f"{row['data']} N={row['n']:,}: ScaNN {speed['1-query']:.1f}x faster per single query, "
            f"{speed['batched']:.1f}x batched throughput, recall@{args.k} "
            f"{row['recall_at_k']:.4f}; load of both models {row['load_s']:.1f} s; serving "
            f"process peak RSS {row['serve_peak_rss_gb']:.1f} GB"
        )
    largest = max(row["n"] for row in rows)
    exact = max(row["export_s"]["exact"] for row in rows if row["n"] == largest)
    scann = max(row["export_s"]["scann"] for row in rows if row["n"] == largest)
    print(
        f"export of {largest:,} candidates (slowest over --data): exact {exact:.1f} s, ScaNN "
        f"{scann:.1f} s on {cores} cores (target < 60 s: {'met' if scann < 60 else 'NOT met'}); "
        f"export process peak RSS {peak_rss_gb():.1f} GB; whole run "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
