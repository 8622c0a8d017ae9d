"""`Cache`: negatives sampled from a cache of the whole catalogue's embeddings.

The negative cache of Lindgren et al. (NeurIPS 2021, "Efficient training of
retrieval models using negative cache"): an `[N, D]` cache of candidate embeddings,
kept out of the gradient and refreshed a share at a time; each row's negatives are
drawn from the softmax of its scores against the cache (Gumbel-max), then embedded
again by the current tower, with their gradient, and corrected by the probability
they were drawn with.
"""

from typing import Any, Callable, Dict, Optional

from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.negatives.known_positives import KnownPositives
from tfrs_negatives.negatives.row_draws import RowContext, RowDraw, gumbel_max_draws, is_training
from tfrs_negatives.negatives.sources import NegativeSource, as_catalogue
from tfrs_negatives.ops.masking import mask_value

import numpy as np
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class Cache(NegativeSource):
    """`count` negatives per row, sampled from the softmax of its scores against a cache.

    Each call scores the `[B, D]` queries against the cached `[N, D]` embeddings of
    the whole catalogue (`[B, N]`, no gradient), and draws `count` rows per query,
    with replacement, by Gumbel-max from `p_i(j) = softmax_j(s~_ij / temperature)`
    (`s~` the cached scores; the row's positive is left out of the distribution).
    The drawn items are embedded again by the call's `candidate_tower` (their
    gradient flows), and the task corrects each by its per-row probability: the
    inclusion probability `1 - (1 - p_i(j))^count` with `duplicates="mask"` (later
    copies in a row masked), the expected share `count p_i(j) / D` with `"keep"`
    (see `tfrs_negatives.tasks.row_mixture`; beside other sources every column is
    corrected by the whole mixture, `p_i(j)` included). The draws are
    an importance sample of the row's softmax denominator, with a proposal close to
    the model's own softmax: the closer the cache is to the current tower, the
    lower the estimate's variance.

    Refresh. In a training call (`training` not False) the cache takes, after it
    was read: the fresh embeddings of the rows it drew, those of the batch's
    positives, and `refresh` more rows, round robin over the catalogue, embedded
    by the tower for the purpose (`stop_gradient`). An entry's age is the steps
    since it was written (`staleness()`); `fill(tower)` embeds the whole catalogue
    at once (eagerly), e.g. before training. Until an entry is written it is
    zeros: with an empty cache the draws are uniform, and corrected as such.

    Cost per step: the `[B, N]` scores, `count` Gumbel passes over them, the tower
    on `B * count + refresh` items; the cache holds `N * D` floats. It suits
    catalogues up to about 10^5-10^6 items on one device.

    `known_positives` filters the drawn ids afterwards (masked, as `Mined`'s).
    Not supported under a `tf.distribute` strategy with several replicas yet.

    Args:
      catalogue: A `Catalogue`, or ids / a lookup layer / a dataset to build one.
      count: Draws per row.
      refresh: Extra catalogue rows re-embedded per training step (round robin).
      temperature: Temperature of the sampling softmax (of the raw scores).
      known_positives: Optional `KnownPositives` of the training data.
      dim: Embedding dimension; None takes it from the first call.
      weight: Initial weight of the source.
      seed: Seed of the source's random generator.
    """

    per_row = True
    samples_rows = True
    side = "scores"
    margin = None

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        catalogue: Any,
        count: int,
        refresh: int = 0,
        temperature: float = 1.0,
        known_positives: Optional[KnownPositives] = None,
        dim: Optional[int] = None,
        weight: float = 1.0,
        seed: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(count=count, weight=weight, **kwargs)
        _check_integer(count, "count", 1)
        _check_integer(refresh, "refresh", 0)
        if dim is not None:
            _check_integer(dim, "dim", 1)
        if not np.isfinite(temperature) or not float(temperature) > 0.0:
            raise ValueError(f"`temperature` must be finite and > 0, got {temperature!r}.")
        self.catalogue: Catalogue = as_catalogue(catalogue)
        self.refresh = int(refresh)
        self.temperature = float(temperature)
        self.known_positives = known_positives
        self.dim = None if dim is None else int(dim)
        self.seed = seed
        self.generator = (
            tf.random.Generator.from_non_deterministic_state()
            if seed is None
            else tf.random.Generator.from_seed(seed)
        )
        n = self.catalogue.size
        self.steps = self._state("steps", [], tf.int64, "zeros")
        self.pointer = self._state("pointer", [], tf.int64, "zeros")
        self.written_step = self._state("written_step", [n], tf.int64, tf.constant_initializer(-1))
        self.embeddings = None
        if self.dim is not None:
            self.build(tf.TensorShape([None, self.dim]))

    def _state(self, name: str, shape: list, dtype: tf.DType, initializer: Any) -> tf.Variable:
        return self.add_weight(
            name=name, shape=shape, dtype=dtype, trainable=False, initializer=initializer
        )

    def build(self, input_shape: tf.TensorShape) -> None:
        dim = tf.TensorShape(input_shape)[-1]
        if dim is None:
            raise ValueError(
                "Cache needs the embedding dimension: give `dim` or query embeddings of "
                f"static shape [B, D], got shape {input_shape}."
            )
        if self.dim is not None and int(dim) != self.dim:
            raise ValueError(
                f"Cache `{self.name}` holds embeddings of dimension {self.dim} (`dim`), got "
                f"embeddings of dimension {dim}."
            )
        self.dim = int(dim)
        if self.embeddings is None:
            shape = [self.catalogue.size, self.dim]
            self.embeddings = self._state("embeddings", shape, tf.float32, "zeros")
        super().build(input_shape)

    def check_ids(self, candidate_ids: Any, query_ids: Any = None) -> None:
        owner = f"Cache `{self.name}`"
        if candidate_ids is not None:
            self.catalogue.check_ids(candidate_ids, "candidate_ids", owner=owner)
        if self.known_positives is not None:
            self.known_positives.check_ids(query_ids, candidate_ids)

    def sampling_logits(self, queries: tf.Tensor, positive_ids: tf.Tensor) -> tf.Tensor:
        """`[B, N]` logits of the sampling softmax: cached scores / temperature, positive masked.

        Args:
          queries: `[B, D]` float32 query embeddings.
          positive_ids: `[B]` int64 ids of the rows' positives.
        """
        self._build_for(queries)
        _check_no_replicas()
        cached = tf.stop_gradient(tf.convert_to_tensor(self.embeddings))
        scores = tf.matmul(tf.stop_gradient(tf.cast(queries, tf.float32)), cached, transpose_b=True)
        logits = scores / self.temperature
        row, found = self.catalogue.lookup(positive_ids)
        columns = tf.range(self.catalogue.size, dtype=tf.int64)
        own = tf.logical_and(found[:, None], tf.equal(columns[None, :], row[:, None]))
        if self.catalogue.size > 1:
            logits = tf.where(own, mask_value(), logits)
        return logits

    def draw_rows(self, context: RowContext) -> RowDraw:
        """The step's `count` draws per row, re-embedded; then the cache's refresh (training).

        Args:
          context: The step (`RowContext`): queries, positives, tower, training flag.

        Returns:
          `RowDraw` with `probabilities` `p_i(j)` of each draw.
        """
        if context.candidate_tower is None:
            raise ValueError(
                f"`candidate_tower` is required by Cache `{self.name}`: its draws are embedded "
                "again by the current tower."
            )
        logits = self.sampling_logits(context.queries, context.positive_ids)
        rows = gumbel_max_draws(self.generator, logits, self.count)  # [B, count] int32
        log_p = tf.nn.log_softmax(logits, axis=1)
        probabilities = tf.exp(tf.gather(log_p, rows, batch_dims=1))
        b = tf.shape(rows)[0]
        ids, features = self.catalogue.gather(tf.reshape(tf.cast(rows, tf.int64), [-1]))
        embedded = tf.cast(context.candidate_tower(features), tf.float32)
        positive_row, found = self.catalogue.lookup(context.positive_ids)
        valid = tf.logical_not(
            tf.logical_and(found[:, None], tf.equal(tf.cast(rows, tf.int64), positive_row[:, None]))
        )
        with tf.control_dependencies([probabilities]):  # written after it was read
            self._after_draw(context, tf.reshape(rows, [-1]), embedded)

        def probability_of(any_ids: tf.Tensor, raw_scores: tf.Tensor) -> tf.Tensor:
            del raw_scores  # the draws follow the cached scores, not the current ones
            index, known = self.catalogue.lookup(tf.reshape(any_ids, [-1]))
            index = tf.reshape(index, tf.shape(any_ids))
            p = tf.exp(tf.gather(log_p, index, batch_dims=1))
            return tf.where(tf.reshape(known, tf.shape(any_ids)), p, 0.0)

        return RowDraw(
            tf.reshape(ids, [b, self.count]),
            tf.reshape(embedded, [b, self.count, -1]),
            valid,
            tf.stop_gradient(probabilities),
            probability_of,
        )

    def _after_draw(self, context: RowContext, rows: tf.Tensor, embedded: tf.Tensor) -> Any:
        training = context.training
        if training is None or isinstance(training, bool):
            if training is False:
                return None
            return self._write_step(context, rows, embedded)
        return tf.cond(
            is_training(training),
            lambda: _done(self._write_step(context, rows, embedded)),
            lambda: tf.constant(False),
        )

    def _write_step(self, context: RowContext, rows: tf.Tensor, embedded: tf.Tensor) -> Any:
        """Writes the drawn rows' fresh embeddings, the positives' and `refresh` more rows."""
        positive_row, found = self.catalogue.lookup(context.positive_ids)
        written_rows = [tf.cast(rows, tf.int64), tf.boolean_mask(positive_row, found)]
        written = [embedded, tf.boolean_mask(context.positive_embeddings, found)]
        updates = []
        if self.refresh:
            n = self.catalogue.size
            take = min(self.refresh, n)
            refreshed = (self.pointer + tf.range(take, dtype=tf.int64)) % n
            _, features = self.catalogue.gather(refreshed)
            written_rows.append(refreshed)
            written.append(tf.cast(context.candidate_tower(features), tf.float32))
            updates.append(self.pointer.assign((self.pointer + take) % n))
        return tf.group(*updates, self.write(tf.concat(written_rows, 0), tf.concat(written, 0)))

    def write(self, rows: tf.Tensor, embeddings: tf.Tensor) -> tf.Operation:
        """Stores `[n, D]` embeddings (no gradient) at `[n]` catalogue rows; advances the step."""
        rows = tf.reshape(tf.cast(rows, tf.int64), [-1, 1])
        values = tf.stop_gradient(tf.cast(embeddings, tf.float32))
        step = tf.convert_to_tensor(self.steps)
        return tf.group(
            self.embeddings.scatter_nd_update(rows, values),
            self.written_step.scatter_nd_update(rows, tf.fill([tf.shape(rows)[0]], step)),
            self.steps.assign_add(1),
        )

    def fill(self, candidate_tower: Callable, batch_size: int = 4096) -> None:
        """Embeds the whole catalogue into the cache (eagerly), in batches of `batch_size`."""
        _check_integer(batch_size, "batch_size", 1)
        n = self.catalogue.size
        for start in range(0, n, batch_size):
            rows = tf.range(start, min(start + batch_size, n), dtype=tf.int64)
            _, features = self.catalogue.gather(rows)
            embedded = tf.cast(candidate_tower(features), tf.float32)
            self._build_for(embedded)
            self.embeddings.scatter_nd_update(rows[:, None], embedded)
            self.written_step.scatter_nd_update(rows[:, None], tf.fill([tf.size(rows)], self.steps))

    def _build_for(self, embeddings: tf.Tensor) -> None:
        if not self.built or self.embeddings is None:
            self.build(embeddings.shape)
        elif embeddings.shape[-1] is not None and int(embeddings.shape[-1]) != self.dim:
            raise ValueError(
                f"Cache `{self.name}` holds embeddings of dimension {self.dim} (`dim`), got "
                f"embeddings of dimension {embeddings.shape[-1]}."
            )

    def staleness(self) -> Dict[str, tf.Tensor]:
        """Age of the cache in steps, as the next step reads it.

        Returns:
          `{"mean_age_steps", "max_age_steps", "written"}`: over written entries,
          and how many of the `N` have been written (ages 0 when none).
        """
        written = self.written_step >= 0
        ages = tf.cast(tf.boolean_mask(self.steps - self.written_step, written), tf.float32)
        count = tf.reduce_sum(tf.cast(written, tf.int32))
        return {
            "mean_age_steps": tf.where(count > 0, tf.reduce_mean(ages), 0.0),
            "max_age_steps": tf.reduce_max(tf.concat([ages, [0.0]], 0)),
            "written": count,
        }

    def call(self, inputs: Any = None) -> tuple:
        raise TypeError(
            "Cache draws per row from the step's scores: the task calls `draw_rows` with the "
            "step's queries and tower."
        )

    def draw_probability(self, ids: tf.Tensor) -> tf.Tensor:
        raise TypeError(
            "Cache's probabilities are per row (`RowDraw.probabilities`), not per id."
        )

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            catalogue=self.catalogue.get_config(),
            refresh=self.refresh,
            temperature=self.temperature,
            known_positives=None
            if self.known_positives is None
            else self.known_positives.get_config(),
            dim=self.dim,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Cache":
        config = dict(config)
        if config.get("known_positives") is not None:
            config["known_positives"] = KnownPositives(**config["known_positives"])
        return cls(**config)


def _done(update: Any) -> tf.Tensor:
    with tf.control_dependencies([update]):
        return tf.constant(True)


def _check_integer(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")


def _check_no_replicas(owner: str = "Cache") -> None:
    if not tf.distribute.has_strategy():
        return
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        raise NotImplementedError(
            f"{owner} does not support {type(tf.distribute.get_strategy()).__name__} with "
            f"{context.num_replicas_in_sync} replicas yet: train on one device."
        )
