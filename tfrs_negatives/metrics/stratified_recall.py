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

from tfrs_negatives.metrics.catalogue_sources import aligned_counts, catalogue_source, plain_values
from tfrs_negatives.metrics.ranks import (
    SeenPairs,
    TrueItems,
    check_chunk_size,
    check_ks,
    check_per_query,
    check_queries,
    count_higher,
)
from tfrs_negatives.popularity import popularity_buckets, resolve_buckets

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

ArrayLike = Union[Sequence, np.ndarray, tf.Tensor]


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

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
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
        self._source = catalogue_source(candidates)
        num_items = self._source.num_items
        self._ks = check_ks(ks, num_items)
        self._chunk_size = check_chunk_size(chunk_size)
        self._buckets = resolve_buckets(buckets)
        self.item_counts = aligned_counts(item_counts, self._source)
        self.item_buckets = popularity_buckets(self.item_counts, list(self._buckets.values()))
        self._item_bucket = tf.constant(self.item_buckets, tf.int32)
        self._seen = None if exclude_seen is None else SeenPairs(exclude_seen, self._source)
        self._query_id_stack = _Stack()
        self._groups = [""] + [f"{bucket}_" for bucket in self._buckets]
        self._recall_metrics = [
            tf.keras.metrics.Mean(name=f"{self.name}/{group}recall@{k}")
            for group in self._groups
            for k in self._ks
        ]

    def get_config(self) -> Dict[str, Any]:
        """Plain-Python arguments (`from_config` rebuilds the metric); see the class doc."""
        if self._source.fixed is None:
            raise NotImplementedError(
                f"{type(self).__name__} reads its catalogue from a dataset or index at every "
                "update, which a config cannot hold: build it again with the same arguments, "
                "or give `candidates` as a pair (ids, embeddings) of arrays for a serializable "
                "metric."
            )
        ids, embeddings = self._source.fixed
        config = super().get_config()
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        config.update(
            candidates=[plain_values(ids), plain_values(embeddings)],
            item_counts=self.item_counts.tolist(),
            ks=list(self._ks),
            buckets=dict(self._buckets),
            exclude_seen=None if self._seen is None else [plain_values(t) for t in self._seen.raw],
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
        queries, true_ids, weights = self._checked_inputs(
            query_embeddings, true_candidate_ids, sample_weight
        )
        query_ids = self._seen_query_ids(query_ids)
        ids, embeddings = self._source.read()
        with tf.control_dependencies(self._source.assert_same(ids, embeddings)):
            embeddings = tf.identity(tf.cast(embeddings, tf.float32))
        position = self._source.positions(true_ids)
        found = position >= 0
        true_embeddings = tf.gather(embeddings, tf.maximum(position, 0))
        true = TrueItems(tf.reduce_sum(queries * true_embeddings, axis=1), position)
        seen = None
        if self._seen is not None:
            seen = self._seen.pairs(query_ids, tf.shape(queries)[0])
        ranks = count_higher(queries, embeddings, true, seen, self._chunk_size)
        bucket = tf.where(found, tf.gather(self._item_bucket, tf.maximum(position, 0)), -1)
        return self._update_recalls(ranks, found, bucket, weights)

    def _checked_inputs(
        self, query_embeddings: tf.Tensor, true_ids: Optional[tf.Tensor], sample_weight: Any
    ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """`([B, D] float32 queries, [B] int64 true ids, [B] weights)`, checked."""
        if true_ids is None:
            raise ValueError(
                "`true_candidate_ids` is required: PopularityStratifiedRecall identifies the "
                "true item by id. With tfrs.tasks.Retrieval or CorrectedRetrieval pass "
                "`candidate_ids=` to the task."
            )
        queries = check_queries(query_embeddings, self._source.dim)
        num_queries = tf.shape(queries)[0]
        true_ids = self._source.check_ids(true_ids, "true_candidate_ids")
        check_per_query(true_ids, num_queries, "true_candidate_ids")
        weights = tf.ones([num_queries], tf.float32)
        if sample_weight is not None:
            weights = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
            check_per_query(weights, num_queries, "sample_weight", exact=True)
        return queries, true_ids[:num_queries], weights

    def _seen_query_ids(self, query_ids: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
        """The query ids `exclude_seen` needs: given, or bound by `bind_query_ids`."""
        if self._seen is None:
            return query_ids
        if query_ids is None and self._query_id_stack.items:
            query_ids = self._query_id_stack.items[-1]
        if query_ids is None:
            raise ValueError(
                "`query_ids` is required with `exclude_seen`: tfrs.tasks.Retrieval and "
                "CorrectedRetrieval do not pass them, so wrap the task call in "
                "`with metric.bind_query_ids(query_ids):` or call "
                "`metric.update_state(..., query_ids=...)` yourself."
            )
        return query_ids

    def _update_recalls(
        self, ranks: tf.Tensor, found: tf.Tensor, bucket: tf.Tensor, weights: tf.Tensor
    ) -> tf.Operation:
        """Adds `[B]` hits (`ranks < k` of found ids) to the overall and per-bucket means."""
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
