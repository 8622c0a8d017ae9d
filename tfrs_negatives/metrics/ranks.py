"""Exact ranks of true items in graph: the catalogue scored chunk by chunk, seen pairs left out.

The rank of a true item is the number of catalogue items scoring strictly higher
(dot product) than it, so ties count in its favour; the true item itself and the
items the query interacted with in training (`SeenPairs`) do not count. The same
rule as `tfrs_negatives.evaluation.true_item_ranks` (NumPy, offline), in TensorFlow
so that it runs inside `tf.function`, `evaluate` and a saved model.
"""

from typing import Any, NamedTuple, Optional, Sequence, Tuple

from tfrs_negatives.metrics.catalogue_sources import CatalogueSource, id_kind, ids_to_numpy
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf


class TrueItems(NamedTuple):
    """Each query's true item: `[B]` its score and `[B]` its catalogue row."""

    scores: tf.Tensor
    positions: tf.Tensor


class BatchPairs(NamedTuple):
    """A batch's seen pairs, sorted by catalogue row: `[P]` batch rows, `[P]` catalogue rows."""

    rows: tf.Tensor
    cols: tf.Tensor


def count_higher(
    queries: tf.Tensor,
    embeddings: tf.Tensor,
    true: TrueItems,
    seen: Optional[BatchPairs],
    chunk_size: int,
) -> tf.Tensor:
    """`[B]` number of catalogue items scoring strictly above each true item.

    The true item itself and the query's seen items (`seen`, from `SeenPairs.pairs`) do
    not count. Scores `[B, chunk_size]` are computed one catalogue chunk at a time.

    Args:
      queries: `[B, D]` float32 query embeddings.
      embeddings: `[N, D]` float32 catalogue embeddings.
      true: The true items' scores and catalogue rows (`[B]` each).
      seen: Optional, the batch's seen pairs.
      chunk_size: Catalogue rows scored at a time.
    """
    num_items = tf.shape(embeddings)[0]
    num_queries = tf.shape(queries)[0]
    num_chunks = (num_items + chunk_size - 1) // chunk_size

    def body(i, higher):
        start = i * chunk_size
        size = tf.minimum(chunk_size, num_items - start)
        scores = tf.matmul(queries, embeddings[start : start + size], transpose_b=True)
        columns = tf.range(start, start + size)
        beats = tf.logical_and(
            scores > true.scores[:, None],
            tf.not_equal(columns[None, :], true.positions[:, None]),
        )
        count = tf.reduce_sum(tf.cast(beats, tf.int32), axis=1)
        if seen is not None:
            bounds = tf.searchsorted(seen.cols, tf.stack([start, start + size]), side="left")
            rows = seen.rows[bounds[0] : bounds[1]]
            cols = seen.cols[bounds[0] : bounds[1]] - start
            seen_beats = tf.gather_nd(beats, tf.stack([rows, cols], axis=1))
            count -= tf.math.unsorted_segment_sum(tf.cast(seen_beats, tf.int32), rows, num_queries)
        return i + 1, higher + count

    _, higher = tf.while_loop(
        lambda i, _: i < num_chunks,
        body,
        (tf.constant(0), tf.zeros([num_queries], tf.int32)),
        parallel_iterations=1,
    )
    return higher


class SeenPairs:
    """Training (query, item) pairs as sorted query keys and per-query catalogue rows."""

    def __init__(self, exclude_seen: Any, source: CatalogueSource) -> None:
        queries, items, query_kind, self.raw = read_pairs(exclude_seen, source)
        self.query_kind = query_kind
        rows, known = source.rows(items)
        if not known.any():
            raise ValueError(
                "`exclude_seen` has no pair whose item id is in the catalogue (`candidates`): "
                "check that both use the same ids."
            )
        pairs = np.unique(np.stack([queries[known], rows[known]], axis=1), axis=0)
        keys, starts = np.unique(pairs[:, 0], return_index=True)
        self.num_pairs = int(pairs.shape[0])
        self._keys = tf.constant(keys, tf.int64)
        # An extra empty row at the end answers queries with no training pairs.
        splits = np.concatenate([starts, [pairs.shape[0], pairs.shape[0]]]).astype(np.int64)
        self._rows = tf.RaggedTensor.from_row_splits(
            tf.constant(pairs[:, 1].astype(np.int32)), tf.constant(splits)
        )

    def pairs(self, query_ids: Any, num_queries: tf.Tensor) -> BatchPairs:
        """Batch rows and catalogue rows of the batch's seen pairs, sorted by catalogue row."""
        query_ids = tf.convert_to_tensor(query_ids)
        if id_kind(query_ids.dtype) != self.query_kind:
            raise TypeError(
                f"`query_ids` holds {query_ids.dtype.name} ids but `exclude_seen` has "
                f"{self.query_kind} query ids: they would never match."
            )
        query_ids = to_int64_ids(tf.reshape(query_ids, [-1]), "query_ids")
        check_per_query(query_ids, num_queries, "query_ids", exact=True)
        num_keys = int(self._keys.shape[0])
        index = tf.minimum(tf.searchsorted(self._keys, query_ids, out_type=tf.int32), num_keys - 1)
        known = tf.equal(tf.gather(self._keys, index), query_ids)
        selected = tf.gather(self._rows, tf.where(known, index, num_keys))
        rows = tf.cast(selected.value_rowids(), tf.int32)
        cols = selected.flat_values
        order = tf.argsort(cols, stable=True)
        return BatchPairs(tf.gather(rows, order), tf.gather(cols, order))


def read_pairs(exclude_seen: Any, source: CatalogueSource):
    """`([n] query ids, [n] item ids, query id kind, raw pair)` from `exclude_seen`."""
    if isinstance(exclude_seen, tf.data.Dataset):
        spec = exclude_seen.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(
                f"`exclude_seen` must yield (query_id, item_id) pairs, got elements {spec}."
            )
        queries, items = [], []
        for query, item in exclude_seen:
            queries.append(tf.reshape(query, [-1]))
            items.append(tf.reshape(item, [-1]))
        if not queries:
            raise ValueError("`exclude_seen` is empty.")
        exclude_seen = (tf.concat(queries, 0), tf.concat(items, 0))
    if not (isinstance(exclude_seen, (tuple, list)) and len(exclude_seen) == 2):
        raise TypeError(
            "`exclude_seen` must be a pair (query_ids, item_ids) of [n] arrays or a "
            f"tf.data.Dataset of (query_id, item_id) pairs, got {type(exclude_seen).__name__}."
        )
    queries, query_kind = ids_to_numpy(exclude_seen[0], "exclude_seen")
    items, item_kind = ids_to_numpy(exclude_seen[1], "exclude_seen")
    if queries.size != items.size:
        raise ValueError(
            f"`exclude_seen` must hold as many query ids as item ids, got {queries.size} "
            f"and {items.size}."
        )
    if queries.size == 0:
        raise ValueError("`exclude_seen` is empty.")
    if item_kind != source.id_kind:
        raise TypeError(
            f"`exclude_seen` has {item_kind} item ids but the catalogue (`candidates`) has "
            f"{source.id_kind} ids: they would never match."
        )
    return queries, items, query_kind, tuple(exclude_seen)


def check_per_query(values: tf.Tensor, expected: tf.Tensor, name: str, exact: bool = False):
    """Raises unless `values` (rank 1) has `expected` entries (or more, unless `exact`)."""
    if values.shape.rank is not None and values.shape.rank != 1:
        raise ValueError(f"`{name}` must have shape [B], got shape {values.shape}.")
    static = tf.get_static_value(expected)
    size = values.shape[0] if values.shape.rank == 1 else None
    if size is not None and static is not None:
        if size < static or (exact and size != static):
            raise ValueError(f"`{name}` must have one entry per query ({static}), got {size}.")
        return
    check = tf.debugging.assert_equal if exact else tf.debugging.assert_greater_equal
    check(tf.size(values), expected, message=f"`{name}` must have one entry per query")


def check_ks(ks: Sequence[int], num_items: int) -> Tuple[int, ...]:
    """The cut-offs as a tuple of distinct positive ints no larger than the catalogue."""
    if isinstance(ks, (int, np.integer)):
        ks = (ks,)
    ks = tuple(ks)
    if not ks:
        raise ValueError("`ks` must hold at least one cut-off, got none.")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"`ks` must hold positive ints, got {list(ks)}.")
    if len(set(ks)) != len(ks):
        raise ValueError(f"`ks` must be distinct, got {list(ks)}.")
    if max(ks) > num_items:
        raise ValueError(
            f"`ks` must not exceed the catalogue size {num_items} (`candidates`), got {list(ks)}."
        )
    return tuple(int(k) for k in ks)


def check_chunk_size(chunk_size: Any) -> int:
    """`chunk_size` as an int, after checking it is a positive int."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"`chunk_size` must be a positive int, got {chunk_size!r}.")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size!r}.")
    return int(chunk_size)


def check_queries(query_embeddings: Any, dim: int) -> tf.Tensor:
    """`[B, D]` float32 queries, after checking rank 2 and the catalogue's dimension `dim`."""
    queries = tf.convert_to_tensor(query_embeddings)
    if queries.shape.rank != 2:
        raise ValueError(f"`query_embeddings` must have shape [B, D], got shape {queries.shape}.")
    if queries.shape[-1] is not None and queries.shape[-1] != dim:
        raise ValueError(
            f"`query_embeddings` must have the catalogue's embedding dimension "
            f"{dim}, got shape {queries.shape}."
        )
    return tf.cast(queries, tf.float32)
