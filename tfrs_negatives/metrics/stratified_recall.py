"""Recall@k over the whole catalogue, split by the popularity bucket of the true item.

`PopularityStratifiedRecall` is a `tfrs.metrics.Factorized` metric: it goes where TFRS
users put `tfrs.metrics.FactorizedTopK` (`metrics=` of `tfrs.tasks.Retrieval` or
`tfrs_negatives.CorrectedRetrieval`) and reports, for every cut-off k, the overall
recall@k and the recall@k of test interactions whose true item is in each popularity
bucket (head / torso / tail by share of training interactions, deciles, or your own
shares). Ranks are exact (brute force over the catalogue's embeddings) and can leave
out the items each query interacted with in training.
"""

import contextlib
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

ArrayLike = Union[Sequence, np.ndarray, tf.Tensor]

BUCKET_PRESETS: Dict[str, Dict[str, float]] = {
    "head_torso_tail": {"head": 0.5, "torso": 0.3, "tail": 0.2},
    "head_tail": {"head": 0.5, "tail": 0.5},
    "deciles": {f"decile{i}": 0.1 for i in range(1, 11)},
}
"""Named bucket specifications: bucket name -> share of training interactions, most popular
first. `"head_tail"` splits like `tfrs_negatives.evaluation.head_items` (share 0.5)."""

_SHARE_TOLERANCE = 1e-6
_BOUNDARY_TOLERANCE = 1e-9


def resolve_buckets(buckets: Union[str, Sequence[float], Mapping[str, float]]) -> Dict[str, float]:
    """Bucket names and shares (most popular first) from a `buckets` specification.

    Args:
      buckets: A name in `BUCKET_PRESETS` (`"head_torso_tail"`, `"head_tail"`,
        `"deciles"`); a sequence of shares (buckets named `bucket1`, `bucket2`, ...);
        or a mapping of bucket name to share. Shares must be positive and sum to 1.

    Returns:
      Ordered dict of bucket name to share.

    Raises:
      ValueError: unknown name, shares not positive or not summing to 1, bad names.
      TypeError: `buckets` of another type.
    """
    if isinstance(buckets, str):
        if buckets not in BUCKET_PRESETS:
            raise ValueError(
                f"`buckets` must be one of {sorted(BUCKET_PRESETS)}, a sequence of shares or a "
                f"mapping of bucket name to share, got {buckets!r}."
            )
        return dict(BUCKET_PRESETS[buckets])
    if isinstance(buckets, Mapping):
        names, shares = list(buckets.keys()), list(buckets.values())
    elif isinstance(buckets, (Sequence, np.ndarray)):
        shares = list(np.asarray(buckets, dtype=np.float64).reshape(-1))
        names = [f"bucket{i}" for i in range(1, len(shares) + 1)]
    else:
        raise TypeError(
            "`buckets` must be a preset name, a sequence of shares or a mapping of bucket name "
            f"to share, got {type(buckets).__name__}."
        )
    if not shares:
        raise ValueError("`buckets` must hold at least one share, got none.")
    for name in names:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(
                f"`buckets` names must be non-empty strings without '/', got {name!r}."
            )
    try:
        values = np.asarray(shares, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`buckets` shares must be numbers, got {shares!r}.") from error
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"`buckets` shares must be positive and finite, got {values.tolist()}.")
    if abs(values.sum() - 1.0) > _SHARE_TOLERANCE:
        raise ValueError(
            f"`buckets` shares must sum to 1, got {values.tolist()} (sum {values.sum():.6g})."
        )
    return dict(zip(names, values.tolist()))


def popularity_buckets(counts: ArrayLike, shares: Sequence[float]) -> np.ndarray:
    """Bucket index of every item, by the share of training interactions it falls in.

    Items are sorted by count, most popular first (ties by index). Bucket `b` ends
    with the item whose running total of interactions first reaches
    `shares[0] + ... + shares[b]` of all interactions, so bucket 0 is the shortest
    prefix holding `shares[0]` of them (as `tfrs_negatives.evaluation.head_items`)
    and the last bucket gets the rest, including every item never seen in training.
    A bucket is empty when a single item holds more than its share.

    Args:
      counts: `[num_items]` non-negative training counts (any positive sum).
      shares: Shares of interactions per bucket, positive, summing to 1.

    Returns:
      `[num_items]` int32 bucket index in `[0, len(shares))`.
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    order = np.argsort(-counts, kind="stable")
    cumulative = np.cumsum(counts[order])
    total = cumulative[-1]
    bounds = np.cumsum(np.asarray(shares, dtype=np.float64))[:-1] * total
    # One past the last position of each bucket; the tolerance keeps 0.1 + 0.2 at 0.3.
    ends = np.searchsorted(cumulative, bounds * (1.0 - _BOUNDARY_TOLERANCE), side="left") + 1
    bucket = np.empty(counts.size, dtype=np.int32)
    bucket[order] = np.searchsorted(ends, np.arange(counts.size), side="right")
    return bucket


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class PopularityStratifiedRecall(tfrs.metrics.Factorized):
    """Exact recall@k overall and per popularity bucket of the true item.

    For each test interaction (query, true item), the rank of the true item is the
    number of catalogue items scoring strictly higher (dot product) than it, so
    ties count in its favour; recall@k is the weighted share of interactions with
    rank < k. The true item is identified by id (`true_candidate_ids`), its score
    is computed from its catalogue embedding, and it never competes with itself.
    With `exclude_seen`, items the query interacted with in training (other than
    the true item) are left out of the ranking, the usual recommender protocol.

    Interactions are split by the popularity bucket of the true item, from
    `item_counts` (training interactions per item): with the default
    `"head_torso_tail"` the head is the most popular items holding the first 50% of
    training interactions, the torso the next 30%, the tail the last 20% (with
    every never-seen item); `"deciles"` makes 10 buckets of 10% of interactions each
    (`decile1` the most popular items); see `popularity_buckets`.

    Results are Keras metrics named `{name}/recall@{k}` and `{name}/{bucket}_recall@{k}`
    (e.g. `stratified_recall/head_recall@10`), so they reach `model.evaluate(
    return_dict=True)`, `fit` logs, progress bars and TensorBoard like
    `FactorizedTopK`'s. A bucket that received no interaction reads 0 (as a Keras
    `Mean`); `counts()` gives the weight behind each. A true id absent from the
    catalogue counts as a miss in the overall recall and in no bucket.

    The catalogue's ids (order), bucket assignment and seen pairs are fixed at
    construction; its embeddings are re-read at every update, so a dataset mapped
    through the item tower follows training (and the tower runs over the whole
    catalogue per update, as with `FactorizedTopK`'s streaming index).

    Usage, like `FactorizedTopK`:

        recall = PopularityStratifiedRecall(
            movies.batch(128).map(lambda t: (t, model.item_tower(t))),
            item_counts=collections.Counter(train_titles),   # id -> count
            ks=(10, 50, 100))
        task = tfn.CorrectedRetrieval(metrics=[recall])     # pass candidate_ids= to the task

    The tasks call `update_state(query_embeddings, candidate_embeddings,
    true_candidate_ids=candidate_ids, sample_weight=...)` without query ids. With
    `exclude_seen`, bind them around the task call in `compute_loss`:

        with self.recall.bind_query_ids(features["user_id"]):
            return self.task(query_embeddings, item_embeddings, candidate_ids=titles)

    or call `update_state(..., query_ids=...)` yourself (e.g. in `test_step`).

    Args:
      candidates: The catalogue: a `tf.data.Dataset` of `(ids, embeddings)` batches
        (as `FactorizedTopK` takes; a dataset of embeddings alone uses row positions
        as ids; unbatched datasets are batched), a `tfrs.layers.factorized_top_k`
        `BruteForce` or `Streaming` index, or a pair `(ids, embeddings)` of arrays.
        Ids are int32, int64 or strings, distinct; every pass must yield the same ids
        in the same order (do not shuffle).
      item_counts: Training interactions per item: a `[num_items]` array aligned with
        the catalogue's order, or a mapping of id to count (missing ids count 0).
      ks: Cut-offs, distinct positive ints no larger than the catalogue.
      buckets: `"head_torso_tail"`, `"head_tail"` (50/50), `"deciles"`, a sequence of
        shares (`bucket1`, ... most popular first) or a mapping of name to share;
        shares positive, summing to 1.
      exclude_seen: Optional training `(query_id, item_id)` pairs: a pair of `[n]`
        arrays `(query_ids, item_ids)` or a `tf.data.Dataset` of such pairs (batched
        or not). Pairs whose item is not in the catalogue are ignored.
      chunk_size: Catalogue rows scored at a time (memory `batch x chunk_size`).
      name: Layer name and prefix of the result names; give two instances in one
        model distinct names.

    `get_config` holds the whole metric as plain values (catalogue ids and
    embeddings, aligned counts, seen pairs) only when `candidates` is a pair of
    arrays: a catalogue fixed at construction. A dataset or index is read again at
    every update (e.g. through the item tower), which no config can hold, so
    `get_config` then raises `NotImplementedError` (Keras' signal for a layer
    without a config; saving a model that holds the metric still works): build
    the metric again with the same arguments.
    """

    def __init__(
        self,
        candidates: Any,
        item_counts: Union[ArrayLike, Mapping[Any, float]],
        ks: Sequence[int] = (10, 50, 100),
        buckets: Union[str, Sequence[float], Mapping[str, float]] = "head_torso_tail",
        exclude_seen: Optional[Any] = None,
        chunk_size: int = 8192,
        name: str = "stratified_recall",
    ) -> None:
        super().__init__(name=name)
        self._source = _CatalogueSource(candidates)
        num_items = self._source.num_items
        self._ks = _check_ks(ks, num_items)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
            raise TypeError(f"`chunk_size` must be a positive int, got {chunk_size!r}.")
        if chunk_size < 1:
            raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size!r}.")
        self._chunk_size = int(chunk_size)
        self._buckets = resolve_buckets(buckets)
        self.item_counts = _aligned_counts(item_counts, self._source)
        self.item_buckets = popularity_buckets(self.item_counts, list(self._buckets.values()))
        self._item_bucket = tf.constant(self.item_buckets, tf.int32)
        order = np.argsort(self._source.ids, kind="stable")
        self._sorted_ids = tf.constant(self._source.ids[order], tf.int64)
        self._sorted_positions = tf.constant(order, tf.int32)
        self._seen = None if exclude_seen is None else _SeenPairs(exclude_seen, self._source)
        self._query_id_stack = _Stack()
        self._groups = [""] + [f"{bucket}_" for bucket in self._buckets]
        self._recall_metrics = [
            tf.keras.metrics.Mean(name=f"{self.name}/{group}recall@{k}")
            for group in self._groups
            for k in self._ks
        ]

    def get_config(self) -> Dict[str, Any]:
        """Plain-Python arguments (`from_config` rebuilds the metric); see the class doc."""
        if self._source._tensors is None:  # pylint: disable=protected-access
            raise NotImplementedError(
                f"{type(self).__name__} reads its catalogue from a dataset or index at every "
                "update, which a config cannot hold: build it again with the same arguments, "
                "or give `candidates` as a pair (ids, embeddings) of arrays for a serializable "
                "metric."
            )
        ids, embeddings = self._source._tensors  # pylint: disable=protected-access
        config = super().get_config()
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        config.update(
            candidates=[_plain(ids), _plain(embeddings)],
            item_counts=self.item_counts.tolist(),
            ks=list(self._ks),
            buckets=dict(self._buckets),
            exclude_seen=None if self._seen is None else [_plain(t) for t in self._seen.raw],
            chunk_size=self._chunk_size,
        )
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "PopularityStratifiedRecall":
        config = {k: v for k, v in config.items() if k not in ("trainable", "dtype")}
        config["candidates"] = tuple(config["candidates"])
        if config.get("exclude_seen") is not None:
            config["exclude_seen"] = tuple(config["exclude_seen"])
        return cls(**config)

    @property
    def ks(self) -> Tuple[int, ...]:
        """The cut-offs."""
        return self._ks

    @property
    def bucket_names(self) -> List[str]:
        """Bucket names, most popular first."""
        return list(self._buckets)

    @property
    def bucket_shares(self) -> Dict[str, float]:
        """Share of training interactions each bucket is cut at."""
        return dict(self._buckets)

    @property
    def num_items(self) -> int:
        """Catalogue size."""
        return self._source.num_items

    @property
    def result_names(self) -> List[str]:
        """Names of the results, in the order of the Keras metrics."""
        return [metric.name for metric in self._recall_metrics]

    @contextlib.contextmanager
    def bind_query_ids(self, query_ids: tf.Tensor) -> Iterator[None]:
        """Within the block, updates without `query_ids` use these (for `exclude_seen`).

        Wrap the task call in `compute_loss` with it: `tfrs.tasks.Retrieval` and
        `CorrectedRetrieval` do not pass query ids to their factorized metrics.
        """
        self._query_id_stack.items.append(query_ids)
        try:
            yield
        finally:
            self._query_id_stack.items.pop()

    def update_state(
        self,
        query_embeddings: tf.Tensor,
        true_candidate_embeddings: Optional[tf.Tensor] = None,
        true_candidate_ids: Optional[tf.Tensor] = None,
        sample_weight: Optional[tf.Tensor] = None,
        query_ids: Optional[tf.Tensor] = None,
    ) -> tf.Operation:
        """Ranks every query's true item in the catalogue and updates the recalls.

        Args:
          query_embeddings: `[B, D]` query embeddings.
          true_candidate_embeddings: `[B, D]` embeddings of the true items; unused
            (the true item is scored with its catalogue embedding) but accepted as
            the tasks pass them.
          true_candidate_ids: `[B]` ids of the true items (or more: the tasks pass
            the ids of every candidate row; the first `B` are the positives).
            Required: the tasks pass them when given `candidate_ids=`.
          sample_weight: Optional `[B]` weights.
          query_ids: `[B]` query ids; required with `exclude_seen` unless bound with
            `bind_query_ids`.

        Returns:
          Update op.
        """
        if true_candidate_ids is None:
            raise ValueError(
                "`true_candidate_ids` is required: PopularityStratifiedRecall identifies the "
                "true item by id. With tfrs.tasks.Retrieval or CorrectedRetrieval pass "
                "`candidate_ids=` to the task."
            )
        queries = tf.convert_to_tensor(query_embeddings)
        if queries.shape.rank != 2:
            raise ValueError(
                f"`query_embeddings` must have shape [B, D], got shape {queries.shape}."
            )
        if queries.shape[-1] is not None and queries.shape[-1] != self._source.dim:
            raise ValueError(
                f"`query_embeddings` must have the catalogue's embedding dimension "
                f"{self._source.dim}, got shape {queries.shape}."
            )
        queries = tf.cast(queries, tf.float32)
        num_queries = tf.shape(queries)[0]
        true_ids = self._source.check_ids(true_candidate_ids, "true_candidate_ids")
        _check_at_least(true_ids, num_queries, "true_candidate_ids")
        true_ids = true_ids[:num_queries]
        weights = tf.ones([num_queries], tf.float32)
        if sample_weight is not None:
            weights = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
            _check_at_least(weights, num_queries, "sample_weight", exact=True)
        if self._seen is not None and query_ids is None and self._query_id_stack.items:
            query_ids = self._query_id_stack.items[-1]
        if self._seen is not None and query_ids is None:
            raise ValueError(
                "`query_ids` is required with `exclude_seen`: tfrs.tasks.Retrieval and "
                "CorrectedRetrieval do not pass them, so wrap the task call in "
                "`with metric.bind_query_ids(query_ids):` or call "
                "`metric.update_state(..., query_ids=...)` yourself."
            )

        ids, embeddings = self._source.read()
        with tf.control_dependencies(self._source.assert_same(ids, embeddings)):
            embeddings = tf.identity(tf.cast(embeddings, tf.float32))
        position = self._positions(true_ids)
        found = position >= 0
        true_embeddings = tf.gather(embeddings, tf.maximum(position, 0))
        true_scores = tf.reduce_sum(queries * true_embeddings, axis=1)
        pair_rows = pair_cols = None
        if self._seen is not None:
            pair_rows, pair_cols = self._seen.pairs(query_ids, num_queries)
        ranks = _count_higher(
            queries, embeddings, true_scores, position, pair_rows, pair_cols, self._chunk_size
        )
        bucket = tf.where(found, tf.gather(self._item_bucket, tf.maximum(position, 0)), -1)
        group_weights = [weights] + [
            weights * tf.cast(tf.equal(bucket, b), tf.float32) for b in range(len(self._buckets))
        ]
        update_ops = []
        metrics = iter(self._recall_metrics)
        for group_weight in group_weights:
            for k in self._ks:
                hits = tf.cast(tf.logical_and(found, ranks < k), tf.float32)
                update_ops.append(next(metrics).update_state(hits, sample_weight=group_weight))
        return tf.group(update_ops)

    def _positions(self, ids: tf.Tensor) -> tf.Tensor:
        """`[n]` int32 catalogue row of each id, -1 for ids not in the catalogue."""
        index = tf.searchsorted(self._sorted_ids, ids, side="left", out_type=tf.int32)
        index = tf.minimum(index, self._source.num_items - 1)
        match = tf.equal(tf.gather(self._sorted_ids, index), ids)
        return tf.where(match, tf.gather(self._sorted_positions, index), -1)

    def result(self) -> Dict[str, tf.Tensor]:
        """Dict of result name (`{name}/recall@k`, `{name}/{bucket}_recall@k`) to value."""
        return {metric.name: metric.result() for metric in self._recall_metrics}

    def counts(self) -> Dict[str, float]:
        """Total sample weight of the interactions counted overall and in each bucket."""
        k = len(self._ks)
        return {
            ("all" if not group else group[:-1]): float(self._recall_metrics[i * k].count.numpy())
            for i, group in enumerate(self._groups)
        }

    def reset_state(self) -> None:
        """Resets every recall."""
        for metric in self._recall_metrics:
            metric.reset_state()

    def reset_states(self) -> None:
        """Alias of `reset_state` (the name `tfrs.metrics.Factorized` uses)."""
        self.reset_state()


class _Stack:
    """A plain holder of bound query ids (kept out of Keras' attribute tracking)."""

    def __init__(self) -> None:
        self.items: List[tf.Tensor] = []


def _check_ks(ks: Sequence[int], num_items: int) -> Tuple[int, ...]:
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


def _check_at_least(values: tf.Tensor, expected: tf.Tensor, name: str, exact: bool = False):
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


def _id_kind(dtype: tf.DType) -> str:
    return "string" if dtype == tf.string else "integer"


def _ids_to_numpy(ids: Any, name: str) -> Tuple[np.ndarray, str]:
    """`[n]` int64 ids (strings fingerprinted) and their kind, from an array-like."""
    if isinstance(ids, tf.Variable):
        ids = ids.read_value()
    if tf.is_tensor(ids):
        tensor = ids
    else:
        array = np.asarray(ids)
        if array.dtype.kind in "iu":
            array = array.astype(np.int64)
        elif array.dtype.kind in "US":
            array = array.astype(object)
        elif array.dtype.kind != "O":
            raise TypeError(f"`{name}` must hold int or string ids, got dtype {array.dtype}.")
        tensor = tf.constant(array.reshape(-1))
    tensor = tf.reshape(tensor, [-1])
    return to_int64_ids(tensor, name).numpy(), _id_kind(tensor.dtype)


class _CatalogueSource:
    """The catalogue: ids fixed at construction, embeddings re-read at every update."""

    def __init__(self, candidates: Any) -> None:
        layers = tfrs.layers.factorized_top_k
        self._dataset = None
        self._index = None
        self._tensors = None
        self.has_ids = True
        if isinstance(candidates, layers.Streaming):
            if candidates._candidates is None:  # pylint: disable=protected-access
                raise ValueError(
                    "`candidates` is a Streaming index without candidates: call its "
                    "`index_from_dataset` first."
                )
            candidates = candidates._candidates  # pylint: disable=protected-access
        if isinstance(candidates, tf.data.Dataset):
            self._dataset = _batched(candidates)
            self.has_ids = isinstance(self._dataset.element_spec, tuple)
            ids, embeddings = _read_eagerly(self._dataset, self.has_ids)
        elif isinstance(candidates, layers.BruteForce):
            if candidates._candidates is None:  # pylint: disable=protected-access
                raise ValueError(
                    "`candidates` is a BruteForce index without candidates: call its `index` "
                    "or `index_from_dataset` first."
                )
            self._index = candidates
            ids = candidates._identifiers  # pylint: disable=protected-access
            embeddings = candidates._candidates  # pylint: disable=protected-access
        elif isinstance(candidates, layers.TopK):
            raise TypeError(
                f"`candidates` must expose exact embeddings; {type(candidates).__name__} does "
                "not (e.g. ScaNN is approximate): pass the dataset of (id, embedding) batches "
                "you indexed it with, or a BruteForce index."
            )
        elif isinstance(candidates, (tuple, list)) and len(candidates) == 2:
            ids = tf.reshape(tf.convert_to_tensor(candidates[0]), [-1])
            embeddings = tf.cast(tf.convert_to_tensor(candidates[1]), tf.float32)
            self._tensors = (ids, embeddings)
        else:
            raise TypeError(
                "`candidates` must be a tf.data.Dataset of (ids, embeddings) batches, a "
                "tfrs.layers.factorized_top_k BruteForce or Streaming index, or a pair "
                f"(ids, embeddings); got {type(candidates).__name__}."
            )
        if embeddings.shape.rank != 2 or embeddings.shape[1] is None:
            raise ValueError(
                "`candidates` must give embeddings of shape [num_items, D], got shape "
                f"{embeddings.shape}."
            )
        self.dim = int(embeddings.shape[1])
        self.num_items = int(embeddings.shape[0])
        if self.num_items == 0:
            raise ValueError("`candidates` is empty: the catalogue needs at least one item.")
        if ids is None:
            self.ids = np.arange(self.num_items, dtype=np.int64)
            self.id_kind = "integer"
        else:
            self.ids, self.id_kind = _ids_to_numpy(ids, "candidates")
        if self.ids.size != self.num_items:
            raise ValueError(
                f"`candidates` must give one id per embedding row, got {self.ids.size} ids "
                f"and {self.num_items} rows."
            )
        sorted_ids = np.sort(self.ids)
        repeated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if repeated.size:
            raise ValueError(
                "`candidates` ids must be distinct; repeated (as int64 or fingerprint): "
                f"{np.unique(repeated)[:5].tolist()}."
            )
        self._ids_constant = tf.constant(self.ids, tf.int64)

    def check_ids(self, ids: Any, name: str) -> tf.Tensor:
        """`ids` as `[n]` int64, after checking they are of the catalogue's kind."""
        ids = tf.convert_to_tensor(ids)
        ids = tf.reshape(ids, [-1]) if ids.shape.rank == 2 and ids.shape[1] == 1 else ids
        if _id_kind(ids.dtype) != self.id_kind:
            raise TypeError(
                f"`{name}` holds {ids.dtype.name} ids but the catalogue (`candidates`) has "
                f"{self.id_kind} ids: they would never match."
            )
        return to_int64_ids(ids, name)

    def read(self) -> Tuple[Optional[tf.Tensor], tf.Tensor]:
        """The catalogue's current `([N] int64 ids or None, [N, D] embeddings)`."""
        if self._tensors is not None:
            return None, self._tensors[1]
        if self._index is not None:
            return (
                to_int64_ids(self._index._identifiers, "candidates"),  # pylint: disable=protected-access
                tf.convert_to_tensor(self._index._candidates),  # pylint: disable=protected-access
            )
        return _read_in_graph(self._dataset, self.has_ids, self.num_items)

    def assert_same(self, ids: Optional[tf.Tensor], embeddings: tf.Tensor) -> List[tf.Operation]:
        """Checks that a pass yielded the construction-time ids, in order."""
        if self._tensors is not None:
            return []
        message = (
            "`candidates` yielded other ids, rows or order than when the metric was built: "
            "the catalogue must be the same on every pass (do not shuffle it)."
        )
        same = tf.equal(tf.shape(embeddings)[0], self.num_items)
        if ids is not None:
            same = tf.logical_and(same, tf.equal(tf.size(ids), self.num_items))
            same = tf.cond(
                same,
                lambda: tf.reduce_all(
                    tf.equal(tf.reshape(ids, [-1])[: self.num_items], self._ids_constant)
                ),
                lambda: tf.constant(False),
            )
        return [tf.debugging.Assert(same, [message])]


def _batched(dataset: tf.data.Dataset) -> tf.data.Dataset:
    spec = dataset.element_spec
    embedding_spec = spec[1] if isinstance(spec, tuple) and len(spec) == 2 else spec
    if isinstance(spec, tuple) and len(spec) != 2:
        raise ValueError(
            f"`candidates` must yield embeddings or (ids, embeddings) tuples, got elements {spec}."
        )
    if not isinstance(embedding_spec, tf.TensorSpec):
        raise TypeError(f"`candidates` must yield tensors, got elements {spec}.")
    if embedding_spec.shape.rank == 1:
        return dataset.batch(1024)
    return dataset


def _read_eagerly(dataset: tf.data.Dataset, has_ids: bool):
    ids, embeddings = [], []
    for element in dataset:
        if has_ids:
            ids.append(tf.reshape(element[0], [-1]))
            embeddings.append(element[1])
        else:
            embeddings.append(element)
    if not embeddings:
        raise ValueError("`candidates` is empty: the catalogue needs at least one item.")
    return (tf.concat(ids, 0) if has_ids else None), tf.concat(embeddings, 0)


def _read_in_graph(dataset: tf.data.Dataset, has_ids: bool, num_items: int):
    """One pass over the dataset as one batch (eagerly or in `tf.function`).

    Rebatched to `num_items + 1` rows so a catalogue that grew shows up as a size
    mismatch in `assert_same`.
    """
    element = dataset.rebatch(num_items + 1).take(1).get_single_element()
    if not has_ids:
        return None, tf.cast(element, tf.float32)
    return to_int64_ids(tf.reshape(element[0], [-1]), "candidates"), tf.cast(element[1], tf.float32)


def _catalogue_rows(source: "_CatalogueSource", ids: np.ndarray):
    """`(rows, known)`: each id's row in the catalogue, and whether it is there at all.

    `rows[i]` is meaningful only where `known[i]`.
    """
    order = np.argsort(source.ids, kind="stable")
    sorted_ids = source.ids[order]
    index = np.minimum(np.searchsorted(sorted_ids, ids), source.num_items - 1)
    return order[index], sorted_ids[index] == ids


class _SeenPairs:
    """Training (query, item) pairs as sorted query keys and per-query catalogue rows."""

    def __init__(self, exclude_seen: Any, source: _CatalogueSource) -> None:
        queries, items, query_kind, self.raw = _read_pairs(exclude_seen, source)
        self.query_kind = query_kind
        rows, known = _catalogue_rows(source, items)
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

    def pairs(self, query_ids: Any, num_queries: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """Batch rows and catalogue rows of the batch's seen pairs, sorted by catalogue row."""
        query_ids = tf.convert_to_tensor(query_ids)
        if _id_kind(query_ids.dtype) != self.query_kind:
            raise TypeError(
                f"`query_ids` holds {query_ids.dtype.name} ids but `exclude_seen` has "
                f"{self.query_kind} query ids: they would never match."
            )
        query_ids = to_int64_ids(tf.reshape(query_ids, [-1]), "query_ids")
        _check_at_least(query_ids, num_queries, "query_ids", exact=True)
        num_keys = int(self._keys.shape[0])
        index = tf.minimum(tf.searchsorted(self._keys, query_ids, out_type=tf.int32), num_keys - 1)
        known = tf.equal(tf.gather(self._keys, index), query_ids)
        selected = tf.gather(self._rows, tf.where(known, index, num_keys))
        rows = tf.cast(selected.value_rowids(), tf.int32)
        cols = selected.flat_values
        order = tf.argsort(cols, stable=True)
        return tf.gather(rows, order), tf.gather(cols, order)


def _read_pairs(exclude_seen: Any, source: _CatalogueSource):
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
    queries, query_kind = _ids_to_numpy(exclude_seen[0], "exclude_seen")
    items, item_kind = _ids_to_numpy(exclude_seen[1], "exclude_seen")
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


def _plain(values: Any) -> list:
    """Nested lists of a tensor or array, bytes decoded to str (JSON-safe)."""
    array = values.numpy() if tf.is_tensor(values) else np.asarray(values)
    if array.dtype.kind in "iu":
        array = array.astype(np.int64)
    elif array.dtype.kind == "f":
        array = array.astype(np.float64)
    return _decode(array.tolist())


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _aligned_counts(item_counts: Any, source: _CatalogueSource) -> np.ndarray:
    """`[num_items]` float64 training counts in the catalogue's order."""
    if isinstance(item_counts, Mapping):
        if not item_counts:
            raise ValueError("`item_counts` is empty.")
        keys, kind = _ids_to_numpy(list(item_counts.keys()), "item_counts")
        if kind != source.id_kind:
            raise TypeError(
                f"`item_counts` has {kind} keys but the catalogue (`candidates`) has "
                f"{source.id_kind} ids."
            )
        values = _as_counts(list(item_counts.values()))
        rows, known = _catalogue_rows(source, keys)
        if not known.any():
            raise ValueError(
                "`item_counts` has no key that is a catalogue id (`candidates`): check that "
                "both use the same ids."
            )
        counts = np.zeros(source.num_items, np.float64)
        np.add.at(counts, rows[known], values[known])
    else:
        counts = _as_counts(item_counts)
        if counts.size != source.num_items:
            raise ValueError(
                f"`item_counts` must have one count per catalogue item ({source.num_items}, "
                f"in the order of `candidates`), got {counts.size}."
            )
    if not counts.sum() > 0:
        raise ValueError("`item_counts` must have a positive total, got 0.")
    return counts


def _as_counts(values: Any) -> np.ndarray:
    try:
        counts = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`item_counts` must hold numbers: {error}") from error
    bad = ~(np.isfinite(counts) & (counts >= 0))
    if bad.any():
        raise ValueError(
            "`item_counts` must be non-negative and finite; got "
            f"{counts[bad][:5].tolist()} at positions {np.flatnonzero(bad)[:5].tolist()}."
        )
    return counts


def _count_higher(
    queries: tf.Tensor,
    embeddings: tf.Tensor,
    true_scores: tf.Tensor,
    true_positions: tf.Tensor,
    pair_rows: Optional[tf.Tensor],
    pair_cols: Optional[tf.Tensor],
    chunk_size: int,
) -> tf.Tensor:
    """`[B]` number of catalogue items scoring strictly above each true item.

    The true item itself and the query's seen items (`pair_rows`, `pair_cols`:
    batch row and catalogue row of each seen pair, sorted by catalogue row) do not
    count. Scores `[B, chunk_size]` are computed one catalogue chunk at a time.
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
            scores > true_scores[:, None],
            tf.not_equal(columns[None, :], true_positions[:, None]),
        )
        count = tf.reduce_sum(tf.cast(beats, tf.int32), axis=1)
        if pair_cols is not None:
            bounds = tf.searchsorted(pair_cols, tf.stack([start, start + size]), side="left")
            rows = pair_rows[bounds[0] : bounds[1]]
            cols = pair_cols[bounds[0] : bounds[1]] - start
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
