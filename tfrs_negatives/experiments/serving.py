"""The end of an experiment: export the best run for serving and query it in a new process.

`add_export_flags` gives a script `--export_dir` and `--export_index`; `export_and_query`
exports the best run's query tower with the catalogue (`save_retrieval`) and runs
`python -m tfrs_negatives.export.query` on it in a fresh Python process, as a server
would load it, printing the top-k candidates of a few queries.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence

from tfrs_negatives.export.retrieval import save_retrieval

import numpy as np

EXPORT_INDEXES = ("exact", "scann")
NUM_QUERIES = 3
TOP_K = 10  # candidates printed per query (at most the catalogue's size)


def add_export_flags(parser: argparse.ArgumentParser) -> None:
    """`--export_dir` (default: a new temporary directory; '' skips) and `--export_index`."""
    parser.add_argument(
        "--export_dir",
        default=None,
        help="after training, export the best run's query tower with the catalogue here "
        "(replaced if it exists) and query it in a new process; default: a new temporary "
        "directory; '' skips the export",
    )
    parser.add_argument(
        "--export_index",
        choices=EXPORT_INDEXES,
        default="exact",
        help="index of the export: exact (stock TensorFlow Serving loads it) or scann",
    )


def best_run(results: Mapping[str, Mapping[str, float]], metric: Optional[str] = None) -> str:
    """The run with the highest `metric` (default: recall at the largest k); ties: the first."""
    if not results:
        raise ValueError("`results` is empty: there is no run to export.")
    if metric is None:
        recalls = [key for key in next(iter(results.values())) if key.startswith("recall@")]
        if not recalls:
            return next(iter(results))
        metric = max(recalls, key=lambda key: int(key.split("@")[1]))
    scores = {name: row.get(metric, float("nan")) for name, row in results.items()}
    finite = {name: value for name, value in scores.items() if np.isfinite(value)}
    if not finite:
        return next(iter(results))
    best = max(finite.values())
    return next(name for name, value in finite.items() if value == best)


def export_and_query(
    args: argparse.Namespace,
    results: Mapping[str, Mapping[str, float]],
    models: Mapping[str, Any],
    query_ids: Sequence[Any],
    candidates: Sequence[Any],
) -> Optional[Dict[str, Any]]:
    """Exports the best run; a new process prints its top `TOP_K` for `NUM_QUERIES` queries.

    Args:
      args: Parsed flags with `export_dir` and `export_index` (`add_export_flags`).
      results: `{run: {metric: value}}`; the run with the best recall at the largest k
        is exported.
      models: `{run: model}`; a model has `query_tower` (raw query ids -> embeddings)
        and `item_tower` (candidate ids -> embeddings).
      query_ids: Query ids to pick the queried ones from (the first distinct ones).
      candidates: `[N]` candidate ids (the catalogue the item tower embeds).

    Returns:
      None when `--export_dir=''`; else `{"run", "path", "queries", "top"}` with
      `top[query]` the ids the query command printed, best first.

    Raises:
      RuntimeError: the query command failed (its error output is included).
    """
    if args.export_dir == "":
        return None
    name = best_run(results)
    model = models[name]
    path = args.export_dir or os.path.join(
        tempfile.mkdtemp(prefix="tfrs_negatives_export_"), "retrieval"
    )
    k = min(TOP_K, len(candidates))
    save_retrieval(
        model.query_tower,
        np.asarray(candidates),
        path,
        index=args.export_index,
        k=k,
        candidate_tower=model.item_tower,
        overwrite=True,
    )
    queries = _first_distinct([_text(q) for q in query_ids], NUM_QUERIES)
    command = [
        sys.executable,
        "-m",
        "tfrs_negatives.export.query",
        path,
        "--queries",
        ",".join(queries),
        "--k",
        str(k),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_USE_LEGACY_KERAS", None)  # a fresh process sets it itself
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"querying the export failed (exit {done.returncode}): {' '.join(command)}\n"
            f"{done.stderr.strip()[-2000:]}"
        )
    print(
        f"\nexported run {name!r} ({args.export_index} index) to {path}; its top {k} for "
        f"{len(queries)} users, from a new process (python -m tfrs_negatives.export.query):"
    )
    print(done.stdout.rstrip())
    return {"run": name, "path": path, "queries": queries, "top": parse_table(done.stdout)}


def parse_table(text: str) -> Dict[str, List[str]]:
    """`{query: [ids, best first]}` from the query command's table output."""
    top: Dict[str, List[str]] = {}
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for line in lines[1:]:  # after the header
        query, _, _, item = line.split(maxsplit=3)
        top.setdefault(query, []).append(item)
    return top


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _first_distinct(values: Sequence[str], count: int) -> List[str]:
    """The first `count` distinct values the command line can pass (no comma)."""
    chosen: List[str] = []
    for value in values:
        if value and "," not in value and value not in chosen:
            chosen.append(value)
            if len(chosen) == count:
                break
    if not chosen:
        raise ValueError("no query id to query the export with (ids must not hold commas).")
    return chosen
