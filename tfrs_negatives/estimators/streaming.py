"""Streaming estimate of item frequencies from hashed arrays (Yi et al. 2019)."""

from typing import Any, Dict, Optional

from tfrs_negatives.estimators.base import SamplingProbabilityEstimator
from tfrs_negatives.ops.id_kind import ID_KINDS, checked_id_kind

import numpy as np
import tensorflow as tf

_PRIME = 2**31 - 1  # hash modulus: products of two 31-bit numbers fit in int64
_KIND_CODES = {None: 0, **{kind: code for code, kind in enumerate(ID_KINDS, start=1)}}
_KINDS = {code: kind for kind, code in _KIND_CODES.items()}


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class StreamingFrequencyEstimator(SamplingProbabilityEstimator):
    """Per-example item probability estimated from the training stream, in fixed memory.

    Yi et al. 2019 ("Sampling-bias-corrected neural modeling for large corpus item
    recommendations", RecSys, Algorithm 2) keep, per hash bucket, `A` (when the id
    was last seen) and `B` (a moving average of the gap between sightings) and
    estimate `q = 1 / B`. Measured as published (time in steps) the estimate
    saturates at `q = 1` for every item present in each batch, which happens for
    large batches over small catalogues (see README). This layer keeps the paper's
    arrays but measures time in *examples* and counts every occurrence in a batch:

    * `A[h]`: number of examples seen when bucket `h` was last seen;
    * `W[h]`: decayed number of occurrences, `W <- (1 - lr) * W + c`;
    * `B[h]`: estimated gap in examples, `B = T / W` with the decayed elapsed time
      `T <- (1 - lr) * T + (now - A[h])`, `T = B * W` before the update;

    where `c` is the number of times ids hashing to `h` occur in the batch and `now`
    counts examples up to and including this batch. A bucket seen `c` times in a
    batch thus contributes `c` occurrences over the elapsed examples (a rate, not
    one gap), so several occurrences of an item in one batch are not under-counted,
    and `q = 1 / B` approaches the item's share of examples, not the chance that it
    appears in a batch. First sighting: `A` starts at 0, so the first gap is the
    number of examples since training began, divided by `c`; `W = 0` makes the
    first observation the whole estimate. A read counts the examples since the
    last sighting as an open gap, `q = W / (T + now - A)`, so an item that stops
    appearing decays instead of keeping the estimate of its last sighting (in a
    training step the batch's ids have `now = A`, so this changes nothing there).
    `q` of an id never seen is `1 / max(now, 1)` (at most one occurrence so far).

    With `num_hashes > 1`, each id is hashed by independent universal hash
    functions into separate arrays; collisions only add occurrences, so the estimate
    is the smallest `q` over hashes (the paper's largest `B`). Memory is
    `num_hashes * num_buckets * (8 + 4 + 4)` bytes, whatever the number of ids.

    Hashes of int ids and of string fingerprints share the arrays, so one stream
    must keep to one kind of ids: the kind is `id_kind` if given, else fixed by
    the first ids checked (`check_ids`, which the task calls on its raw
    `candidate_ids`, or a call with string or int32 ids). It is kept in the
    variable `id_kind_code` (0 unknown, 1 int, 2 string), so a checkpoint
    restores it with the counts it belongs to; ids of the other kind are then a
    `TypeError` at trace time.

    Args:
      num_buckets: Buckets per hash function; a few times the number of distinct
        items keeps collisions rare.
      num_hashes: Number of hash functions.
      learning_rate: Decay `lr` of past observations in `(0, 1]`.
      seed: Seed of the hash functions' coefficients.
      id_kind: `"int"`, `"string"`, or None (fixed by the first checked ids).
    """

    updates_in_training = True

    def __init__(
        self,
        num_buckets: int = 2**18,
        num_hashes: int = 2,
        learning_rate: float = 0.05,
        seed: int = 0,
        id_kind: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        code = _KIND_CODES[checked_id_kind(id_kind, "id_kind")]
        if not isinstance(num_buckets, (int, np.integer)) or not 1 <= num_buckets <= _PRIME:
            raise ValueError(
                f"`num_buckets` must be an integer in [1, {_PRIME}], got {num_buckets!r}."
            )
        if not isinstance(num_hashes, (int, np.integer)) or num_hashes < 1:
            raise ValueError(f"`num_hashes` must be an integer >= 1, got {num_hashes!r}.")
        if not 0.0 < float(learning_rate) <= 1.0 or np.isnan(learning_rate):
            raise ValueError(f"`learning_rate` must be in (0, 1], got {learning_rate!r}.")
        self.num_buckets = int(num_buckets)
        self.num_hashes = int(num_hashes)
        self.learning_rate = float(learning_rate)
        self.seed = int(seed)
        rng = np.random.RandomState(self.seed)
        # h_k(x) = (a1 lo + a2 mid + a3 hi + b) mod p mod num_buckets, on x's 31-bit pieces.
        self._coefficients = rng.randint(1, _PRIME, size=(self.num_hashes, 4)).astype(np.int64)
        size = self.num_hashes * self.num_buckets
        self.last_seen = self._state("last_seen", [size], tf.int64)
        self.gap = self._state("gap", [size], tf.float32)
        self.occurrences = self._state("occurrences", [size], tf.float32)
        self.examples_seen = self._state("examples_seen", [], tf.int64)
        self.id_kind_code = self._state("id_kind_code", [], tf.int32, code)

    @property
    def id_kind(self) -> Optional[str]:
        """`"int"`, `"string"` or None: read from `id_kind_code` (eagerly, also while tracing)."""
        with tf.init_scope():
            return _KINDS.get(int(self.id_kind_code.numpy()))

    def _record_id_kind(self, kind: str) -> None:
        with tf.init_scope():
            self.id_kind_code.assign(_KIND_CODES[kind])

    def _state(self, name: str, shape: list, dtype: tf.DType, value: int = 0) -> tf.Variable:
        """A state variable (zeros by default); under a distribution strategy every
        replica computes the same update and the first replica's is kept."""
        return self.add_weight(
            name=name,
            shape=shape,
            dtype=dtype,
            initializer=tf.constant_initializer(value),
            trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def bucket_indices(self, ids: tf.Tensor) -> tf.Tensor:
        """`[num_hashes, n]` int64 positions of `[n]` int64 ids in the flat arrays."""
        mask31 = tf.constant(_PRIME, tf.int64)
        pieces = tf.stack(
            [
                tf.bitwise.bitwise_and(ids, mask31),
                tf.bitwise.bitwise_and(tf.bitwise.right_shift(ids, 31), mask31),
                tf.bitwise.bitwise_and(tf.bitwise.right_shift(ids, 62), 3),
            ]
        )  # [3, n], each in [0, 2^31)
        coefficients = tf.constant(self._coefficients)  # [H, 4]
        acc = coefficients[:, 3:4] + tf.zeros_like(ids)[None, :]  # [H, n]
        for piece in range(3):
            acc = acc + (coefficients[:, piece : piece + 1] * pieces[piece][None, :]) % _PRIME
            acc = acc % _PRIME
        offsets = tf.range(self.num_hashes, dtype=tf.int64)[:, None] * self.num_buckets
        return acc % self.num_buckets + offsets

    def update(self, ids: tf.Tensor) -> None:
        context = tf.distribute.get_replica_context()
        # Under a strategy (even with one replica) the state is mirrored: it takes
        # no scatter in replica context, so the whole arrays are assigned.
        distributed = tf.distribute.has_strategy() and context is not None
        if distributed and context.num_replicas_in_sync > 1:
            # Every replica counts the whole global batch, identically; the
            # variables keep the first replica's (equal) result. The identity places
            # the ids on the replica's device (`tasks.replicas.all_gather` says why).
            ids = context.all_gather(tf.identity(ids), axis=0)
        now = self.examples_seen.assign_add(tf.size(ids, out_type=tf.int64))
        positions = tf.reshape(self.bucket_indices(ids), [-1])
        buckets, _, counts = tf.unique_with_counts(positions, out_idx=tf.int64)
        buckets = buckets[:, None]
        elapsed = tf.cast(now - tf.gather_nd(self.last_seen, buckets), tf.float32)
        old_weight = tf.gather_nd(self.occurrences, buckets)
        old_time = tf.gather_nd(self.gap, buckets) * old_weight
        keep = 1.0 - self.learning_rate
        new_weight = keep * old_weight + tf.cast(counts, tf.float32)
        new_gap = (keep * old_time + elapsed) / new_weight
        updates = (
            (self.occurrences, new_weight),
            (self.gap, new_gap),
            (self.last_seen, tf.fill(tf.shape(counts), now)),
        )
        for variable, values in updates:
            if distributed:  # mirrored variables take no scatter in replica context
                variable.assign(tf.tensor_scatter_nd_update(variable, buckets, values))
            else:
                variable.scatter_nd_update(buckets, values)

    def probability(self, ids: tf.Tensor) -> tf.Tensor:
        positions = self.bucket_indices(ids)  # [H, n]
        occurrences = tf.gather(self.occurrences, positions)
        # The examples since the last sighting count as an open gap: (T + now - A) / W.
        open_gap = tf.cast(self.examples_seen - tf.gather(self.last_seen, positions), tf.float32)
        gaps = tf.gather(self.gap, positions) + tf.math.divide_no_nan(open_gap, occurrences)
        gaps = tf.reduce_max(gaps, axis=0)  # [n]; 0 only if never seen
        unseen_gap = tf.cast(tf.maximum(self.examples_seen, 1), tf.float32)
        gaps = tf.where(gaps > 0.0, gaps, unseen_gap)
        return tf.minimum(1.0 / gaps, 1.0)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            num_buckets=self.num_buckets,
            num_hashes=self.num_hashes,
            learning_rate=self.learning_rate,
            seed=self.seed,
            id_kind=self.id_kind,
        )
        return config
