"""Query an exported retrieval model from the command line.

    python -m tfrs_negatives.export.query PATH --queries 1,42,7 [--k 10]
        [--exclude "id1|id2" ...] [--feature NAME=v1,v2,...] [--json]

Loads the SavedModel at `PATH` with `load_retrieval` (ScaNN's ops are imported when the
model holds a ScaNN index), feeds the raw query features to its `serving_default`
signature and prints, for each query, its top-k candidate ids and scores. The input
names and dtypes are read from the signature, so string and integer query ids both work:
`--queries` fills the model's only query input (`query` for a single-tensor tower); a
tower taking a dict of features gets one `--feature NAME=v1,v2,...` per feature instead.

`--exclude` (models exported with `exclude=True`) lists ids to leave out, separated by
`|` (titles may hold commas): given once it applies to every query, given once per
query it applies to each in order. `--k` prints the first `k` of the `k` the model was
exported with. Bad input (a path that is not a SavedModel, a value that is not of the
input's dtype, `--k` larger than the export's, ...) prints one line naming the problem
and exits with status 2, without a traceback.
"""

import argparse
import json
import sys
from typing import Dict, List, Optional, Sequence

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow)
from tfrs_negatives.export.loading import load_retrieval
from tfrs_negatives.export.retrieval import (
    EMPTY_INT_ID,
    EMPTY_SCORE,
    EMPTY_STRING_ID,
    EXCLUDE_INPUT,
    QUERY_INPUT,
)

import numpy as np
import tensorflow as tf

SIGNATURE = "serving_default"
EXCLUDE_SEPARATOR = "|"


class QueryError(ValueError):
    """Bad input to the query command (printed without a traceback)."""


def parse_values(text: str, spec: tf.TensorSpec, name: str) -> np.ndarray:
    """`[n]` values of a comma-separated list, converted to the dtype of input `name`."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(item == "" for item in items):
        raise QueryError(f"{name}: expected a comma-separated list of values, got {text!r}.")
    return _convert(items, spec.dtype, name)


def _convert(items: Sequence[str], dtype: tf.DType, name: str) -> np.ndarray:
    if dtype == tf.string:
        return np.array(items, dtype=object)
    try:
        if dtype.is_integer:
            return np.array([int(item) for item in items], dtype=dtype.as_numpy_dtype)
        if dtype.is_floating:
            return np.array([float(item) for item in items], dtype=dtype.as_numpy_dtype)
        if dtype == tf.bool:
            truth = {"true": True, "1": True, "false": False, "0": False}
            return np.array([truth[item.lower()] for item in items], dtype=bool)
    except (ValueError, KeyError):
        raise QueryError(
            f"{name}: the model's input takes {dtype.name} values, got {list(items)!r}."
        ) from None
    raise QueryError(f"{name}: inputs of dtype {dtype.name} are not supported by this command.")


def _shaped(values: np.ndarray, spec: tf.TensorSpec, name: str) -> tf.Tensor:
    """Values as a batch of the input's shape (`[B]`, or `[B, 1]`)."""
    trailing = spec.shape.as_list()[1:]
    if trailing and trailing != [1]:
        raise QueryError(
            f"{name}: the model's input has shape {spec.shape}; this command feeds one value "
            "per query ([B] or [B, 1])."
        )
    return tf.constant(values.reshape([-1, *trailing]), dtype=spec.dtype)


def query_inputs(
    specs: Dict[str, tf.TensorSpec],
    queries: Optional[str],
    features: Sequence[str],
) -> Dict[str, tf.Tensor]:
    """The signature's query inputs from `--queries` or the `--feature NAME=...` given."""
    names = sorted(name for name in specs if name != EXCLUDE_INPUT)
    given: Dict[str, str] = {}
    for feature in features:
        name, sep, values = feature.partition("=")
        if not sep or name not in names:
            raise QueryError(
                f"--feature must be NAME=v1,v2,... with NAME one of the model's query inputs "
                f"{names}, got {feature!r}."
            )
        given[name] = values
    if queries is not None:
        if len(names) != 1:
            raise QueryError(
                f"--queries: the model takes several query features {names}; pass each with "
                "--feature NAME=v1,v2,..."
            )
        given[names[0]] = queries
    missing = [name for name in names if name not in given]
    if missing:
        flag = "--queries" if names == [QUERY_INPUT] else "--feature NAME=..."
        raise QueryError(f"the model's query inputs {missing} were not given (use {flag}).")
    inputs = {}
    for name in names:
        label = "--queries" if queries is not None and len(names) == 1 else f"--feature {name}"
        inputs[name] = _shaped(parse_values(given[name], specs[name], label), specs[name], label)
    sizes = {name: int(t.shape[0]) for name, t in inputs.items()}
    if len(set(sizes.values())) != 1:
        raise QueryError(f"every query feature needs one value per query, got sizes {sizes}.")
    return inputs


def exclude_input(
    spec: Optional[tf.TensorSpec], exclude: Sequence[str], num_queries: int, empty_id
) -> Optional[tf.Tensor]:
    """`[B, E]` ids to exclude (padded with the empty id), or None when not exported."""
    if spec is None:
        if exclude:
            raise QueryError(
                "--exclude: this model was exported without exclude=True, so it cannot leave "
                "ids out; export it with save_retrieval(..., exclude=True)."
            )
        return None
    if exclude and len(exclude) not in (1, num_queries):
        raise QueryError(
            f"--exclude must be given once (for every query) or once per query "
            f"({num_queries}), got {len(exclude)}."
        )
    lists = [exclude[0]] * num_queries if len(exclude) == 1 else list(exclude)
    rows: List[np.ndarray] = []
    for text in lists:
        items = [item.strip() for item in text.split(EXCLUDE_SEPARATOR) if item.strip()]
        rows.append(_convert(items, spec.dtype, "--exclude") if items else np.array([]))
    width = max([len(row) for row in rows] + [0])
    table = np.full([num_queries, width], empty_id, dtype=object)
    for i, row in enumerate(rows):
        table[i, : len(row)] = row
    if spec.dtype != tf.string:
        table = table.astype(spec.dtype.as_numpy_dtype)
    return tf.constant(table, dtype=spec.dtype, shape=[num_queries, width])


def _decode(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def format_table(
    queries: Sequence[str], ids: np.ndarray, scores: np.ndarray, empty_id
) -> List[str]:
    """Lines `query  rank  score  id` (id last: titles hold spaces); empty slots left out."""
    width = max([len("query")] + [len(q) for q in queries])
    lines = [f"{'query':<{width}}  {'rank':>4}  {'score':>10}  id"]
    for query, row_ids, row_scores in zip(queries, ids, scores):
        for rank, (item, score) in enumerate(zip(row_ids, row_scores), start=1):
            if score <= EMPTY_SCORE or _decode(item) == _decode(empty_id):
                continue
            lines.append(f"{query:<{width}}  {rank:>4}  {score:>10.4f}  {_decode(item)}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tfrs_negatives.export.query",
        description="Top-k candidates of an exported retrieval model for a few queries.",
    )
    parser.add_argument("path", help="directory of a SavedModel written by save_retrieval")
    parser.add_argument("--queries", help="comma-separated query ids (the model's only input)")
    parser.add_argument(
        "--feature",
        action="append",
        default=[],
        help="NAME=v1,v2,... for a query tower taking a dict of features (repeat per feature)",
    )
    parser.add_argument("--k", type=int, default=None, help="print the first k (default: all)")
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        help="ids to leave out, separated by '|': once for every query, or once per query",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.queries is None and not args.feature:
        parser.error("give the queries: --queries v1,v2,... (or --feature NAME=v1,v2,...)")
    if args.k is not None and args.k < 1:
        parser.error(f"--k must be a positive integer, got {args.k}.")
    try:
        model = load_retrieval(args.path)
    except (OSError, ImportError) as err:  # not a SavedModel, incomplete, no ScaNN
        parser.error(str(err))
    if SIGNATURE not in model.signatures:
        parser.error(f"{args.path!r} has no {SIGNATURE!r} signature: not a retrieval export.")
    serve = model.signatures[SIGNATURE]
    specs = dict(serve.structured_input_signature[1])
    metadata = getattr(model, "metadata", {}) or {}
    exported_k = metadata.get("k") or serve.structured_outputs["ids"].shape[-1]
    if args.k is not None and exported_k is not None and args.k > exported_k:
        parser.error(
            f"--k ({args.k}) exceeds the k the model was exported with ({exported_k}); "
            f"export it again with save_retrieval(..., k={args.k})."
        )
    try:
        inputs = query_inputs(specs, args.queries, args.feature)
        num_queries = int(next(iter(inputs.values())).shape[0])
        string_ids = serve.structured_outputs["ids"].dtype == tf.string
        empty_id = metadata.get("empty_id", EMPTY_STRING_ID if string_ids else EMPTY_INT_ID)
        excluded = exclude_input(specs.get(EXCLUDE_INPUT), args.exclude, num_queries, empty_id)
    except QueryError as err:
        parser.error(str(err))
    if excluded is not None:
        inputs[EXCLUDE_INPUT] = excluded
    try:
        out = serve(**inputs)
    except (tf.errors.OpError, ValueError, TypeError) as err:
        print(f"{parser.prog}: the model failed on these inputs: {err}", file=sys.stderr)
        return 1
    k = args.k or exported_k
    ids = out["ids"].numpy()[:, :k]
    scores = out["scores"].numpy()[:, :k]
    labels = _labels(inputs, num_queries)
    if args.json:
        result = {
            "queries": labels,
            "ids": [[_decode(i) if isinstance(i, bytes) else int(i) for i in row] for row in ids],
            "scores": scores.astype(float).tolist(),
        }
        print(json.dumps(result))
    else:
        index = metadata.get("index", "unknown")
        print(f"# {args.path}: {index} index, top {k} of {metadata.get('num_candidates', '?')}")
        print("\n".join(format_table(labels, ids, scores, empty_id)))
    return 0


def _labels(inputs: Dict[str, tf.Tensor], num_queries: int) -> List[str]:
    """How each query is shown: its value, or `name=value,...` for several features."""
    columns = {
        name: [_decode(v) for v in np.reshape(t.numpy(), [num_queries, -1])[:, 0]]
        for name, t in inputs.items()
        if name != EXCLUDE_INPUT
    }
    if len(columns) == 1:
        return next(iter(columns.values()))
    return [",".join(f"{n}={columns[n][i]}" for n in sorted(columns)) for i in range(num_queries)]


if __name__ == "__main__":
    sys.exit(main())
