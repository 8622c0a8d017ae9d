"""Estimators that look probabilities up in a fixed table: exact counts or given values."""

from typing import Any, Dict, Optional, Sequence, Union

from tfrs_negatives.estimators.base import SamplingProbabilityEstimator
from tfrs_negatives.ops.id_kind import STRING, checked_id_kind, id_kind, id_kind_of_dtype
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf

ArrayLike = Union[Sequence, np.ndarray, tf.Tensor]


def _ids_as_int64(ids: ArrayLike, name: str) -> np.ndarray:
    if np.size(ids) == 0:
        raise ValueError(f"`{name}` must hold at least one id, got an empty sequence.")
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        ids = ids.astype(np.int64)
    elif isinstance(ids, (list, tuple)) and ids and all(isinstance(i, int) for i in ids):
        ids = np.asarray(ids, np.int64)
    return np.asarray(to_int64_ids(tf.constant(ids) if not tf.is_tensor(ids) else ids, name))


class _SortedTable(SamplingProbabilityEstimator):
    """Sorted int64 ids and their probabilities, looked up by binary search.

    Args:
      ids: `[V]` distinct ids (int or string; strings are fingerprinted).
      probabilities: `[V]` probabilities in `(0, 1]`.
      default_probability: Probability of ids not in the table, or None to fail
        on them.
      id_kind: Kind of ids the table is looked up with (`"int"`/`"string"`);
        None: the kind of `ids`. `"string"` with int `ids` takes them as the
        strings' fingerprints (`to_int64_ids`), as `get_config` stores them.
    """

    def __init__(
        self,
        ids: ArrayLike,
        probabilities: ArrayLike,
        default_probability: Optional[float],
        id_kind: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._id_kind = _table_id_kind(ids, id_kind)
        ids = _ids_as_int64(ids, "ids")
        probabilities = np.asarray(probabilities, np.float64).reshape(-1)
        if probabilities.shape != ids.shape:
            raise ValueError(
                f"`probabilities` must have one value per id: expected shape {ids.shape}, "
                f"got {probabilities.shape}."
            )
        bad = ~((probabilities > 0) & (probabilities <= 1))
        if bad.any():
            raise ValueError(
                "`probabilities` must lie in (0, 1] with no NaN; got "
                f"{probabilities[bad][:5].tolist()} at positions "
                f"{np.flatnonzero(bad)[:5].tolist()}."
            )
        if default_probability is not None and not 0.0 < float(default_probability) <= 1.0:
            raise ValueError(
                f"`default_probability` must be in (0, 1] or None, got {default_probability!r}."
            )
        order = np.argsort(ids, kind="stable")
        ids, probabilities = ids[order], probabilities[order]
        duplicated = ids[1:][ids[1:] == ids[:-1]]
        if duplicated.size:
            raise ValueError(
                "`ids` must be distinct; repeated (as int64 or fingerprint): "
                f"{duplicated[:5].tolist()}."
            )
        self.default_probability = (
            None if default_probability is None else float(default_probability)
        )
        self.table_size = int(ids.size)
        self.sorted_ids = self.add_weight(
            name="sorted_ids",
            shape=[ids.size],
            dtype=tf.int64,
            trainable=False,
            initializer=tf.constant_initializer(ids),
        )
        self.probabilities = self.add_weight(
            name="probabilities",
            shape=[ids.size],
            dtype=tf.float32,
            trainable=False,
            initializer=tf.constant_initializer(probabilities.astype(np.float32)),
        )

    def probability(self, ids: tf.Tensor) -> tf.Tensor:
        position = tf.searchsorted(self.sorted_ids, ids, side="left", out_type=tf.int32)
        position = tf.minimum(position, self.table_size - 1)
        found = tf.equal(tf.gather(self.sorted_ids, position), ids)
        values = tf.gather(self.probabilities, position)
        if self.default_probability is None:
            check = tf.debugging.assert_equal(
                tf.reduce_all(found),
                True,
                message=(
                    f"{type(self).__name__}: `ids` holds ids that are not in the table and "
                    "no `default_probability` was given"
                ),
            )
            with tf.control_dependencies([check]):
                return tf.identity(values)
        return tf.where(found, values, self.default_probability)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(id_kind=self.id_kind)
        return config

    def table(self) -> Dict[str, np.ndarray]:
        """The table as NumPy arrays: `ids` (int64, sorted) and `probabilities`."""
        return {"ids": self.sorted_ids.numpy(), "probabilities": self.probabilities.numpy()}


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class StaticProbabilities(_SortedTable):
    """User-given sampling probabilities, looked up by id.

    Args:
      ids: `[V]` distinct ids (int32/int64/string; strings are fingerprinted).
      probabilities: `[V]` probabilities in `(0, 1]`.
      default_probability: Probability of ids not in the table; None (default)
        makes such ids an error at lookup.
      id_kind: Kind of the ids looked up (`"int"`/`"string"`); None: that of
        `ids` (int `ids` with `"string"` are fingerprints, as in a config).
    """

    def __init__(
        self,
        ids: ArrayLike,
        probabilities: ArrayLike,
        default_probability: Optional[float] = None,
        id_kind: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(ids, probabilities, default_probability, id_kind, **kwargs)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        table = self.table()
        config.update(
            ids=table["ids"].tolist(),
            probabilities=table["probabilities"].astype(float).tolist(),
            default_probability=self.default_probability,
        )
        return config


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class ExactFrequencyEstimator(_SortedTable):
    """Exact per-example probabilities `q_j = count_j / sum(count)` from counts.

    Ids without a count (items absent from the counted data) get
    `unseen_count / sum(count)`: as if seen `unseen_count` times.

    Args:
      ids: `[V]` distinct ids.
      counts: `[V]` non-negative occurrence counts (positive total).
      unseen_count: Count assumed for ids not in `ids`, > 0.
      id_kind: Kind of the ids looked up (`"int"`/`"string"`); None: that of
        `ids` (int `ids` with `"string"` are fingerprints, as in a config).
    """

    def __init__(
        self,
        ids: ArrayLike,
        counts: ArrayLike,
        unseen_count: float = 1.0,
        id_kind: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        counts = np.asarray(counts, np.float64).reshape(-1)
        if not np.all(np.isfinite(counts)) or (counts < 0).any() or counts.sum() <= 0:
            raise ValueError(
                "`counts` must be finite, non-negative and have a positive total, got "
                f"min={counts.min() if counts.size else None}, sum={counts.sum()}."
            )
        if not float(unseen_count) > 0:
            raise ValueError(f"`unseen_count` must be > 0, got {unseen_count!r}.")
        total = counts.sum()
        self.counts = counts
        self.unseen_count = float(unseen_count)
        probabilities = np.minimum(
            np.maximum(counts, self.unseen_count * (counts == 0)) / total, 1.0
        )
        super().__init__(ids, probabilities, min(1.0, self.unseen_count / total), id_kind, **kwargs)
        self._ids_config = _ids_as_int64(ids, "ids")

    @classmethod
    def from_dataset(
        cls, dataset: tf.data.Dataset, unseen_count: float = 1.0, **kwargs: Any
    ) -> "ExactFrequencyEstimator":
        """Counts the ids of a dataset in one pass.

        Args:
          dataset: `tf.data.Dataset` whose elements are ids, scalar or batched
            (`[n]`), of int or string dtype.
          unseen_count: See the class.
          **kwargs: Passed to the layer.

        Returns:
          An `ExactFrequencyEstimator`.
        """
        spec = dataset.element_spec
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank not in (0, 1):
            raise ValueError(
                "`dataset` must yield scalar or rank-1 id tensors (map your features to "
                f"the id first, e.g. `ds.map(lambda x: x['movie_id'])`), got {spec}."
            )
        chunks = [
            np.asarray(chunk)
            for chunk in dataset.map(
                lambda x: to_int64_ids(tf.reshape(x, [-1]), "dataset")
            ).as_numpy_iterator()
        ]
        if not chunks or sum(c.size for c in chunks) == 0:
            raise ValueError("`dataset` holds no ids; cannot count frequencies.")
        ids, counts = np.unique(np.concatenate(chunks), return_counts=True)
        kwargs.setdefault("id_kind", id_kind_of_dtype(spec.dtype, "dataset"))
        return cls(ids, counts, unseen_count=unseen_count, **kwargs)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            ids=self._ids_config.tolist(),
            counts=self.counts.tolist(),
            unseen_count=self.unseen_count,
        )
        return config


def _table_id_kind(ids: ArrayLike, given: Optional[str]) -> str:
    """The kind of ids a table is looked up with: `given`, or that of `ids`.

    Int `ids` may stand for strings (their fingerprints, as a config holds them);
    string `ids` cannot stand for ints.
    """
    given = checked_id_kind(given, "id_kind")
    if np.size(ids) == 0:
        return given
    kind = id_kind(ids, "ids")
    if given is not None and given != kind and kind == STRING:
        raise ValueError(f"`id_kind` is {given!r} but `ids` are strings.")
    return given or kind
