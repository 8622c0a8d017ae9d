"""The interface every sampling-probability estimator shares."""

from typing import Any, Optional, Union

from tfrs_negatives.ops.id_kind import check_id_kind
from tfrs_negatives.ops.ids import to_int64_ids

import tensorflow as tf


class SamplingProbabilityEstimator(tf.keras.layers.Layer):
    """Maps candidate ids to the probability `q` that a sampled example's item is that id.

    Calling the layer, `estimator(ids, training=...)`, returns `[n]` float32
    probabilities in `(0, 1]`; with `training=True` an estimator that learns from
    the stream (`updates_in_training`) first counts the batch's ids. `q` is the
    per-example probability (the share of training examples whose item is the id),
    so it is the same quantity whether it comes from a stream, from exact counts or
    from a table, and it can be mixed with other samplers' probabilities.

    Subclasses implement `probability(ids)` and, if they learn, `update(ids)`; ids
    reach both as `[n]` int64 (strings already fingerprinted, see
    `tfrs_negatives.ops.to_int64_ids`).

    An estimator holds one kind of ids (`id_kind`, `"int"` or `"string"`): a
    table knows it from its ids, a streaming estimator from its `id_kind`
    argument or its first checked ids. `check_ids(ids, name)` raises when raw ids
    are of the other kind (they would read as never seen); call it on the ids a
    user passes before converting them. Calling the layer checks string and int32
    ids; int64 ids pass unchecked, since they may be the fingerprints of string
    ids that `to_int64_ids` already converted (as the task passes them).
    """

    #: Whether `update` changes state (the task then needs `training` to be given).
    updates_in_training: bool = False

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)

    def __call__(self, ids: Optional[tf.Tensor] = None, *args: Any, **kwargs: Any) -> tf.Tensor:
        if ids is None:
            raise ValueError(
                f"{type(self).__name__} must be called with `ids`: a rank-1 tensor of "
                "int32, int64 or string candidate ids, got None."
            )
        return super().__call__(ids, *args, **kwargs)

    @property
    def id_kind(self) -> Optional[str]:
        """`"int"` or `"string"`: the kind of ids the estimator holds; None if not known yet."""
        return getattr(self, "_id_kind", None)

    def _record_id_kind(self, kind: str) -> None:
        """Fixes the kind of ids of an estimator that did not know it (the first checked ids)."""
        self._id_kind = kind

    def check_ids(self, ids: Any, name: str = "ids") -> None:
        """Raises if raw `ids` are not of the kind the estimator holds (fixing it if unknown).

        A dtype check, free at trace time.

        Args:
          ids: `[n]` int or string ids as given (before `to_int64_ids`).
          name: The argument they came in, for the error (e.g. `"candidate_ids"`).

        Raises:
          TypeError: string ids for an estimator of int ids or the reverse, e.g.
            "`candidate_ids` are strings but the ExactFrequencyEstimator
            `exact_frequency_estimator` was built on int ids (int32/int64) ...".
        """
        owner = f"the {type(self).__name__} `{self.name}`"
        kind = check_id_kind(ids, self.id_kind, name, owner)
        if self.id_kind is None:
            self._record_id_kind(kind)

    def call(self, ids: tf.Tensor, training: Optional[Union[bool, tf.Tensor]] = None) -> tf.Tensor:
        """Probabilities of `ids`, after counting them when `training`.

        Args:
          ids: `[n]` int32, int64 or string ids.
          training: Whether this is a training step (learning estimators update).

        Returns:
          `[n]` float32 probabilities in `(0, 1]`.
        """
        raw = tf.convert_to_tensor(ids)
        ids = to_int64_ids(raw, "ids")
        if raw.dtype != tf.int64:  # int64 ids may be fingerprints of strings: not checked
            self.check_ids(raw, "ids")
        if self.updates_in_training and training is not None:
            if isinstance(training, bool):
                if training:
                    self.update(ids)
            else:
                tf.cond(
                    tf.cast(training, tf.bool),
                    lambda: self._update_returning(ids),
                    lambda: tf.constant(False),
                )
        return self.probability(ids)

    def _update_returning(self, ids: tf.Tensor) -> tf.Tensor:
        self.update(ids)
        return tf.constant(True)

    def probability(self, ids: tf.Tensor) -> tf.Tensor:
        """`[n]` float32 probabilities of `[n]` int64 ids, without changing state."""
        raise NotImplementedError

    def update(self, ids: tf.Tensor) -> None:
        """Counts a training batch's `[n]` int64 ids. Stateless estimators do nothing."""
        del ids
