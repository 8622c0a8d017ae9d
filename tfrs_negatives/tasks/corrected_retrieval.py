"""`CorrectedRetrieval`: TFRS retrieval with log-Q correction and accidental-hit removal."""

from typing import Any, Dict, List, Optional, Sequence, Union

from tfrs_negatives import ops
from tfrs_negatives.estimators.base import SamplingProbabilityEstimator

import tensorflow as tf
import tensorflow_recommenders as tfrs


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class CorrectedRetrieval(tfrs.tasks.Retrieval):
    """In-batch softmax retrieval corrected for the sampling bias of its negatives.

    A drop-in subclass of `tfrs.tasks.Retrieval`: call it in `compute_loss` with
    query and candidate embeddings (row `i` of each is a positive pair; extra
    candidate rows are extra negatives for every query). On top of TFRS it

    * estimates each candidate's sampling probability `q_j` with `frequency` (any
      `SamplingProbabilityEstimator`; a streaming one learns from the positives of
      training steps only, i.e. when `training=True`) and corrects the logits
      (`correction="logq"`: `s_ij - a log q_j`; `"positive_uncorrected"`:
      Khrylchenko et al. 2025, see `tfrs_negatives.ops.logq`);
    * removes accidental hits by comparing ids as int64 (strings are fingerprinted
      once), which keeps the cost of removal small at large batch sizes;
    * computes logits in float32 and masks with finite constants (mixed precision);
    * computes the default loss with the sparse softmax kernel (same value as TFRS).

    With `frequency=None`, no `candidate_sampling_probability` and
    `remove_accidental_hits=False` the loss is TFRS's.

    Args:
      frequency: Estimator of `q`; None for no estimated correction (a
        `candidate_sampling_probability` passed to `call` is still applied).
      correction: `"logq"` or `"positive_uncorrected"`: how `q` corrects logits.
      correction_strength: Multiplier `a` of the correction; 1 is unbiased.
      probability_clip: Lower clip of `q` before the log.
      remove_accidental_hits: Mask candidates equal to the row's positive.
      temperature: Logits are divided by it before correction (as TFRS).
      loss: Optional Keras loss on `(labels [B, N], logits [B, N])`; defaults to
        softmax cross-entropy summed over rows (TFRS's default).
      jit_compile: Compute the default loss with XLA (`tf.function(jit_compile=True)`),
        fusing correction, masks and softmax; False runs the same ops unfused.
      metrics, batch_metrics, loss_metrics, num_hard_negatives, name: As in
        `tfrs.tasks.Retrieval`. Metrics and a custom loss hold objects (datasets of
        candidates) and are not part of `get_config`; pass them again when
        rebuilding from a config.
    """

    def __init__(
        self,
        frequency: Optional[SamplingProbabilityEstimator] = None,
        correction: Optional[str] = "logq",
        correction_strength: float = 1.0,
        probability_clip: float = 1e-6,
        remove_accidental_hits: bool = False,
        temperature: Optional[float] = None,
        loss: Optional[tf.keras.losses.Loss] = None,
        metrics: Optional[Union[Sequence[tfrs.metrics.Factorized], tfrs.metrics.Factorized]] = None,
        batch_metrics: Optional[List[tf.keras.metrics.Metric]] = None,
        loss_metrics: Optional[List[tf.keras.metrics.Metric]] = None,
        num_hard_negatives: Optional[int] = None,
        jit_compile: bool = True,
        name: Optional[str] = None,
    ) -> None:
        if frequency is not None and not isinstance(frequency, SamplingProbabilityEstimator):
            raise TypeError(
                "`frequency` must be a tfrs_negatives SamplingProbabilityEstimator "
                "(StreamingFrequencyEstimator, ExactFrequencyEstimator, StaticProbabilities) "
                f"or None, got {type(frequency).__name__}."
            )
        if correction is not None and correction not in ops.CORRECTIONS:
            raise ValueError(
                f"`correction` must be one of {ops.CORRECTIONS} or None, got {correction!r}."
            )
        if not 0.0 < float(probability_clip) < 1.0:
            raise ValueError(f"`probability_clip` must be in (0, 1), got {probability_clip!r}.")
        if temperature is not None and not float(temperature) > 0.0:
            raise ValueError(f"`temperature` must be > 0 or None, got {temperature!r}.")
        super().__init__(
            loss=loss,
            metrics=metrics,
            batch_metrics=batch_metrics,
            loss_metrics=loss_metrics,
            temperature=temperature,
            num_hard_negatives=num_hard_negatives,
            remove_accidental_hits=remove_accidental_hits,
            name=name,
        )
        self.frequency = frequency
        self.correction = correction
        self.correction_strength = float(correction_strength)
        self.probability_clip = float(probability_clip)
        self._custom_loss = loss is not None
        self.jit_compile = bool(jit_compile)

    def call(
        self,
        query_embeddings: tf.Tensor,
        candidate_embeddings: tf.Tensor,
        sample_weight: Optional[tf.Tensor] = None,
        candidate_sampling_probability: Optional[tf.Tensor] = None,
        candidate_ids: Optional[tf.Tensor] = None,
        compute_metrics: bool = True,
        compute_batch_metrics: bool = True,
        score_mask: Optional[tf.Tensor] = None,
        training: Optional[bool] = None,
    ) -> tf.Tensor:
        """Computes the corrected loss and updates metrics.

        Args:
          query_embeddings: `[B, D]` (or `[B, H, D]`, max over heads) queries.
          candidate_embeddings: `[N, D]` candidates, `N >= B`; row `i < B` is the
            positive of query `i`, rows `>= B` are extra negatives.
          sample_weight: Optional `[B]` weights.
          candidate_sampling_probability: Optional `[N]` probabilities in `(0, 1]`,
            used instead of `frequency`.
          candidate_ids: `[N]` int or string ids; required for accidental-hit
            removal and for `frequency`.
          compute_metrics: Update the factorized (top-K) metrics.
          compute_batch_metrics: Update the batch metrics.
          score_mask: Optional `[B, N]` boolean; False entries are excluded.
          training: Whether this is a training step; required (pass
            `training=training` from `compute_loss`) when `frequency` learns from
            the stream, since Keras does not forward it from `tfrs.Model.train_step`.

        Returns:
          Scalar float32 loss.
        """
        num_queries, num_candidates = _check_embeddings(query_embeddings, candidate_embeddings)
        scores = _scores(query_embeddings, candidate_embeddings)
        if self._temperature is not None:
            scores = scores / self._temperature

        needs_ids = self._remove_accidental_hits or (
            self.frequency is not None and candidate_sampling_probability is None
        )
        ids = None
        if needs_ids:
            if candidate_ids is None:
                reason = "accidental-hit removal" if self._remove_accidental_hits else "`frequency`"
                raise ValueError(
                    f"`candidate_ids` is required by {reason}: pass the [num_candidates] ids "
                    "of the candidate rows, got None."
                )
            ids = ops.to_int64_ids(candidate_ids, "candidate_ids")
            _check_length(ids, num_candidates, "candidate_ids")

        probabilities = self._probabilities(
            candidate_sampling_probability, ids, num_queries, num_candidates, training
        )
        if sample_weight is not None:
            _check_length(tf.reshape(sample_weight, [-1]), num_queries, "sample_weight")
        correction = dict(
            probabilities=probabilities if self.correction is not None else None,
            correction=self.correction or "logq",
            clip_min=self.probability_clip,
            strength=self.correction_strength,
            positive_ids=ids[:num_queries] if self._remove_accidental_hits else None,
            candidate_ids=ids if self._remove_accidental_hits else None,
            score_mask=score_mask,
        )
        needs_logits = (
            self._custom_loss
            or self._num_hard_negatives is not None
            or (compute_batch_metrics and self._batch_metrics)
        )
        labels = None
        if needs_logits:
            scores = ops.corrected_logits(scores, **correction)
            labels = tf.eye(num_queries, num_candidates)
            if self._num_hard_negatives is not None:
                scores, labels = tfrs.layers.loss.HardNegativeMining(self._num_hard_negatives)(
                    scores, labels
                )
            if self._custom_loss or self._num_hard_negatives is not None:
                loss = self._loss(y_true=labels, y_pred=scores, sample_weight=sample_weight)
            else:
                loss = ops.softmax_cross_entropy(scores, sample_weight)
        else:
            loss_fn = (
                ops.fused_corrected_softmax_loss if self.jit_compile else ops.corrected_softmax_loss
            )
            loss = loss_fn(scores, sample_weight, **correction)

        update_ops = [metric.update_state(loss) for metric in self._loss_metrics]
        if compute_metrics and query_embeddings.shape.rank == 2:
            for metric in self._factorized_metrics:
                update_ops.append(
                    metric.update_state(
                        query_embeddings,
                        candidate_embeddings[:num_queries],
                        true_candidate_ids=candidate_ids,
                        sample_weight=sample_weight,
                    )
                )
        if compute_batch_metrics:
            for metric in self._batch_metrics:
                update_ops.append(metric.update_state(labels, scores, sample_weight=sample_weight))
        with tf.control_dependencies([op for op in update_ops if op is not None]):
            return tf.identity(loss)

    def _probabilities(
        self,
        given: Optional[tf.Tensor],
        ids: Optional[tf.Tensor],
        num_queries: tf.Tensor,
        num_candidates: tf.Tensor,
        training: Optional[bool],
    ) -> Optional[tf.Tensor]:
        """`[N]` sampling probabilities: the given ones (checked) or the estimator's."""
        if given is not None:
            given = tf.cast(given, tf.float32)
            if given.shape.rank is not None and given.shape.rank != 1:
                raise ValueError(
                    "`candidate_sampling_probability` must have shape [num_candidates], "
                    f"got shape {given.shape}."
                )
            _check_length(given, num_candidates, "candidate_sampling_probability")
            check = tf.debugging.assert_equal(
                tf.reduce_all((given > 0.0) & (given <= 1.0)),
                True,
                message="`candidate_sampling_probability` must lie in (0, 1] with no NaN",
            )
            with tf.control_dependencies([check]):
                return tf.identity(given)
        if self.frequency is None:
            return None
        if self.frequency.updates_in_training and training is None:
            raise ValueError(
                f"`training` is None but `frequency` ({type(self.frequency).__name__}) learns "
                "from training steps: pass `training=training` when calling the task in "
                "`compute_loss` (Keras does not forward it from `tfrs.Model.train_step`)."
            )
        positives = self.frequency(ids[:num_queries], training=training)
        if ids.shape[0] is not None and ids.shape[0] == positives.shape[0]:
            return positives
        extra = self.frequency.probability(ids[num_queries:])
        return tf.concat([positives, extra], axis=0)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            frequency=(
                None if self.frequency is None else tf.keras.layers.serialize(self.frequency)
            ),
            correction=self.correction,
            correction_strength=self.correction_strength,
            probability_clip=self.probability_clip,
            remove_accidental_hits=self._remove_accidental_hits,
            temperature=self._temperature,
            num_hard_negatives=self._num_hard_negatives,
            jit_compile=self.jit_compile,
        )
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "CorrectedRetrieval":
        config = dict(config)
        if config.get("frequency") is not None:
            config["frequency"] = tf.keras.layers.deserialize(config["frequency"])
        return cls(**config)


def _check_embeddings(query_embeddings: tf.Tensor, candidate_embeddings: tf.Tensor):
    """Checks ranks and dims; returns `(num_queries, num_candidates)` as scalar tensors."""
    if query_embeddings.shape.rank not in (None, 2, 3):
        raise ValueError(
            "`query_embeddings` must have shape [B, D] or [B, heads, D], got shape "
            f"{query_embeddings.shape}."
        )
    if candidate_embeddings.shape.rank not in (None, 2):
        raise ValueError(
            "`candidate_embeddings` must have shape [N, D], got shape "
            f"{candidate_embeddings.shape}."
        )
    q_dim, c_dim = query_embeddings.shape[-1], candidate_embeddings.shape[-1]
    if q_dim is not None and c_dim is not None and q_dim != c_dim:
        raise ValueError(
            f"`candidate_embeddings` must have the embedding dimension of `query_embeddings` "
            f"({q_dim}), got {c_dim} (shapes {query_embeddings.shape} and "
            f"{candidate_embeddings.shape})."
        )
    b, n = query_embeddings.shape[0], candidate_embeddings.shape[0]
    if b is not None and n is not None and n < b:
        raise ValueError(
            f"`candidate_embeddings` must have at least as many rows as `query_embeddings` "
            f"({b}: one positive per query), got {n}."
        )
    return tf.shape(query_embeddings)[0], tf.shape(candidate_embeddings)[0]


def _check_length(values: tf.Tensor, expected: tf.Tensor, name: str) -> None:
    """Raises (statically when shapes are known) unless `values` has `expected` rows."""
    static_expected = tf.get_static_value(expected)
    if values.shape.rank == 1 and values.shape[0] is not None and static_expected is not None:
        if values.shape[0] != static_expected:
            raise ValueError(
                f"`{name}` must have {static_expected} entries (one per row), "
                f"got {values.shape[0]}."
            )
        return
    tf.debugging.assert_equal(
        tf.size(values), expected, message=f"`{name}` must have one entry per row"
    )


def _scores(query_embeddings: tf.Tensor, candidate_embeddings: tf.Tensor) -> tf.Tensor:
    """`[B, N]` float32 dot-product logits (max over heads for `[B, H, D]` queries)."""
    queries = tf.cast(query_embeddings, tf.float32)
    candidates = tf.cast(candidate_embeddings, tf.float32)
    if queries.shape.rank == 3:
        return tf.reduce_max(tf.einsum("qhd,cd->qhc", queries, candidates), axis=1)
    return tf.linalg.matmul(queries, candidates, transpose_b=True)
