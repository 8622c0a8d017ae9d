"""`CrossBatch`: the positives of the last batches, kept with their embeddings, as negatives.

Cross-batch negative sampling (CBNS, Wang et al. SIGIR 2021) and the cross-batch
memory of metric learning (XBM, Wang et al. CVPR 2020): a FIFO memory of the last
`M` positive candidate embeddings (with their ids), read as `M` extra shared
negative columns without running the candidate tower again. The extra negatives
cost one `[B, M]` product and no re-embedding; the price is staleness: an entry
was embedded by the tower of the step that wrote it.
"""

from typing import Any, Callable, Dict, Optional

from tfrs_negatives.negatives.sources import NegativeSource

import numpy as np
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class CrossBatch(NegativeSource):
    """The last `memory` positive candidates (ids and embeddings) of training steps as negatives.

    The memory is a FIFO of `[M, D]` embeddings, `[M]` int64 ids, `[M]` sampling
    probabilities `q` of the stored positives as the task estimated them when they
    were written, and `[M]` the step each was written at (plus a write pointer, a
    fill count and a step counter), all `tf.Variable`s, so checkpoints carry them.
    Each task call reads the memory as `M` shared columns (after the batch's and
    before later sources'); slots not filled yet are masked, and with
    `remove_accidental_hits` an entry equal to a row's positive is masked as an
    in-batch accidental hit is. After the loss, a training call (`training` not
    False) writes its own positives (`stop_gradient`: the memory holds values,
    no gradient flows into it or through it), so a step never sees its own
    batch twice. A batch larger than `M` writes its last `M` rows.

    Correction. The memory holds the positives of the last `M / B` batches: like
    the in-batch negatives, draws from the training stream, whose per-draw
    probability is the in-batch `q(j)` of the task's `frequency` estimator. Each
    filled slot is one more draw from `q`, so the source's per-draw probability is
    the (current) `q(j)` and its number of draws is the number of filled slots
    `F`; it enters the mixture as every source does (`tfrs_negatives.ops.mixture`):
    with `B` in-batch draws, `Q(j) = (B q(j) + F q(j)) / (B + F) = q(j)` when
    duplicates are kept, and `pi(j) = 1 - (1 - q(j))^(B + F)` when they are masked
    (the default with sampled sources). This treats the stream as stationary over
    the memory's window (a few batches); `q` is read at the current step, and the
    `q` stored with each entry is kept for inspection (`probabilities`). The
    task's `frequency` is required.

    Staleness. An entry written at step `t` and read at step `s` was embedded by
    the tower of `t`: it is `s - t` steps old (`staleness()`), and its embedding may
    have drifted from the current tower's (`drift(...)`). XBM finds the drift small
    once training settles and harmful in its first steps; a small `memory` (a few
    batches) keeps the age low.

    `active_count` (the curriculum's variable) caps the slots read; the source
    reads `min(active_count, filled)` slots, and the filled slots are always the
    first `filled` (the pointer starts at 0). Not supported yet under a
    `tf.distribute` strategy with several replicas (an error says so).

    Args:
      memory: `M`, the number of stored positives (an integer >= 1).
      dim: Embedding dimension `D`; None (default) takes it from the first call.
      weight: Initial weight of the source's columns.
    """

    supplies_embeddings = True
    follows_stream = True

    def __init__(
        self, memory: int, dim: Optional[int] = None, weight: float = 1.0, **kwargs: Any
    ) -> None:
        kwargs.pop("count", None)
        _check_positive_integer(memory, "memory")
        if dim is not None:
            _check_positive_integer(dim, "dim")
        super().__init__(count=int(memory), weight=weight, **kwargs)
        self.memory = int(memory)
        self.dim = None if dim is None else int(dim)
        self.steps = self._state("steps", [], tf.int64)
        self.pointer = self._state("pointer", [], tf.int64)
        self.filled = self._state("filled", [], tf.int64)
        self.ids = self._state("ids", [self.memory], tf.int64)
        self.probabilities = self._state("probabilities", [self.memory], tf.float32)
        self.written_step = self._state("written_step", [self.memory], tf.int64)
        if self.dim is not None:
            self.build(tf.TensorShape([None, self.dim]))

    def _state(self, name: str, shape: list, dtype: tf.DType) -> tf.Variable:
        return self.add_weight(
            name=name, shape=shape, dtype=dtype, trainable=False, initializer="zeros"
        )

    def build(self, input_shape: tf.TensorShape) -> None:
        dim = tf.TensorShape(input_shape)[-1]
        if dim is None:
            raise ValueError(
                "CrossBatch needs the embedding dimension: give `dim` or candidate "
                f"embeddings of static shape [N, D], got shape {input_shape}."
            )
        if self.dim is not None and int(dim) != self.dim:
            raise ValueError(
                f"CrossBatch `{self.name}` was built for embeddings of dimension {self.dim} "
                f"(`dim`), got candidate embeddings of dimension {dim}."
            )
        self.dim = int(dim)
        if getattr(self, "embeddings", None) is None:
            self.embeddings = self._state("embeddings", [self.memory, self.dim], tf.float32)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tuple:
        """The memory as columns: `(ids [M] int64, embeddings [M, D] float32)`.

        Args:
          inputs: `[N0, D]` the call's given candidate embeddings (their dimension
            builds the memory; their values are not read).
        """
        dim = inputs.shape[-1]
        if dim is not None and int(dim) != self.dim:
            raise ValueError(
                f"CrossBatch `{self.name}` was built for embeddings of dimension {self.dim} "
                f"(`dim`), got candidate embeddings of dimension {dim}."
            )
        _check_no_replicas()
        return self.sample_embeddings()

    def sample_embeddings(self) -> tuple:
        """`(ids [M] int64, embeddings [M, D] float32)` of the memory; slots
        `>= active_draws()` are not filled (or not used) and are masked by the task."""
        return (
            tf.identity(self.ids),
            tf.stop_gradient(tf.convert_to_tensor(self.embeddings)),
        )

    def sample(self) -> tuple:
        raise TypeError(
            "CrossBatch draws no ids to embed: its candidates come with their stored "
            "embeddings (`sample_embeddings`)."
        )

    def active_draws(self) -> tf.Tensor:
        filled = tf.cast(self.filled, tf.int32)
        return tf.minimum(tf.convert_to_tensor(self.active_count), filled)

    def draw_probability(self, ids: tf.Tensor) -> tf.Tensor:
        raise TypeError(
            "CrossBatch's per-draw probability is the task's in-batch `q` (its draws "
            "follow the training stream): the task passes it to the mixture."
        )

    def log_miss_probability(self, ids: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
        return self.draw_probability(ids)

    def enqueue(
        self, ids: tf.Tensor, embeddings: tf.Tensor, probabilities: Optional[tf.Tensor] = None
    ) -> tf.Operation:
        """Writes a training step's positives into the FIFO and advances the step.

        Args:
          ids: `[B]` int64 ids of the step's positives.
          embeddings: `[B, D]` their embeddings (gradients are stopped).
          probabilities: `[B]` their sampling probability `q`, or None (stored as 0).

        Returns:
          The grouped update op.
        """
        ids = tf.cast(tf.reshape(ids, [-1]), tf.int64)
        embeddings = tf.stop_gradient(tf.cast(embeddings, tf.float32))
        if probabilities is None:
            probabilities = tf.zeros(tf.shape(ids), tf.float32)
        probabilities = tf.stop_gradient(tf.cast(tf.reshape(probabilities, [-1]), tf.float32))
        n = tf.shape(ids, out_type=tf.int64)[0]
        take = tf.minimum(n, self.memory)
        start = n - take  # a batch larger than the memory writes its last rows
        slots = ((self.pointer + tf.range(take, dtype=tf.int64)) % self.memory)[:, None]
        step = tf.convert_to_tensor(self.steps)
        return tf.group(
            self.ids.scatter_nd_update(slots, ids[start:]),
            self.embeddings.scatter_nd_update(slots, embeddings[start:]),
            self.probabilities.scatter_nd_update(slots, probabilities[start:]),
            self.written_step.scatter_nd_update(slots, tf.fill([take], step)),
            self.pointer.assign((self.pointer + take) % self.memory),
            self.filled.assign(tf.minimum(self.filled + take, self.memory)),
            self.steps.assign_add(1),
        )

    def after_step(
        self,
        ids: tf.Tensor,
        embeddings: tf.Tensor,
        probabilities: Optional[tf.Tensor],
        training: Any,
    ) -> Optional[tf.Operation]:
        """The task's hook at the end of a call: enqueues when `training` is not False."""
        if training is None or isinstance(training, bool):
            return None if training is False else self.enqueue(ids, embeddings, probabilities)
        return tf.cond(
            tf.cast(training, tf.bool),
            lambda: _done(self.enqueue(ids, embeddings, probabilities)),
            lambda: tf.constant(False),
        )

    def staleness(self) -> Dict[str, tf.Tensor]:
        """Age of the filled memory, in steps, as seen by the next step's read.

        Returns:
          `{"mean_age_steps", "max_age_steps", "filled"}` scalars (ages 0 when empty).
        """
        filled = tf.cast(self.filled, tf.int32)
        ages = tf.cast(self.steps - self.written_step[:filled], tf.float32)
        empty = tf.equal(filled, 0)
        return {
            "mean_age_steps": tf.where(empty, 0.0, tf.reduce_mean(ages)),
            "max_age_steps": tf.where(empty, 0.0, tf.reduce_max(tf.concat([ages, [0.0]], 0))),
            "filled": filled,
        }

    def drift(
        self,
        candidate_tower: Callable,
        features_of_ids: Optional[Callable] = None,
        sample: int = 256,
    ) -> Dict[str, tf.Tensor]:
        """Drift between stored embeddings and the current tower's, on the first `sample` slots.

        Args:
          candidate_tower: The current candidate tower.
          features_of_ids: Maps `[n]` int64 ids to the tower's inputs; None passes
            the ids themselves (ID towers over integer ids).
          sample: Number of filled slots compared (the first ones).

        Returns:
          `{"mean_cosine_distance", "mean_l2", "relative_l2", "compared"}`: mean
          `1 - cos`, mean `||e_stored - e_now||`, the latter over the mean
          `||e_now||`, and the number of entries compared (all 0 when empty).
        """
        _check_positive_integer(sample, "sample")
        n = tf.minimum(tf.cast(self.filled, tf.int32), sample)
        ids = self.ids[:n]
        stored = tf.convert_to_tensor(self.embeddings)[:n]
        inputs = ids if features_of_ids is None else features_of_ids(ids)
        current = tf.cast(candidate_tower(inputs), tf.float32)
        cosine = tf.reduce_sum(
            tf.math.l2_normalize(stored, -1) * tf.math.l2_normalize(current, -1), -1
        )
        distance = tf.norm(stored - current, axis=-1)
        size = tf.maximum(tf.reduce_mean(tf.norm(current, axis=-1)), 1e-12)
        mean = lambda values: tf.where(n > 0, tf.reduce_mean(values), 0.0)  # noqa: E731
        return {
            "mean_cosine_distance": mean(1.0 - cosine),
            "mean_l2": mean(distance),
            "relative_l2": tf.where(n > 0, mean(distance) / size, 0.0),
            "compared": n,
        }

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.pop("count", None)
        config.update(memory=self.memory, dim=self.dim)
        return config


def _done(update: tf.Operation) -> tf.Tensor:
    with tf.control_dependencies([update]):
        return tf.constant(True)


def _check_positive_integer(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")


def _check_no_replicas() -> None:
    """Raises under a strategy with several replicas in sync (per-replica memories: not yet)."""
    if not tf.distribute.has_strategy():
        return
    context = tf.distribute.get_replica_context()
    replicas = 1 if context is None else context.num_replicas_in_sync
    if replicas > 1:
        strategy = type(tf.distribute.get_strategy()).__name__
        raise NotImplementedError(
            f"CrossBatch does not support {strategy} with {replicas} replicas yet (its "
            "memory would need one copy per replica, or the gathered global batch): train "
            "on one device, or leave CrossBatch out of `negatives`."
        )
