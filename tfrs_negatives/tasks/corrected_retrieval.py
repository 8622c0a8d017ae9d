"""`CorrectedRetrieval`: TFRS retrieval with log-Q correction, mixed negatives and losses."""

import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from tfrs_negatives import ops
from tfrs_negatives.estimators.base import SamplingProbabilityEstimator
from tfrs_negatives.metrics.negative_diagnostics import NegativeDiagnostics
from tfrs_negatives.negatives.sources import InBatch, NegativeSource
from tfrs_negatives.ops.diagnostics import retrieval_statistics
from tfrs_negatives.tasks import checks
from tfrs_negatives.tasks.columns import (
    LogitInputs,
    column_exclusions,
    column_sources,
    distinct_counts,
    draw_columns,
    draw_row_columns,
    mixture_probabilities,
    row_exclusions,
)

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

DUPLICATES = ("keep", "mask")


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class CorrectedRetrieval(tfrs.tasks.Retrieval):
    """Softmax retrieval over in-batch and sampled negatives, corrected for how they were drawn.

    A drop-in subclass of `tfrs.tasks.Retrieval`: call it in `compute_loss` with
    query and candidate embeddings (row `i` of each is a positive pair; extra
    candidate rows are extra negatives for every query). On top of TFRS it

    * estimates each candidate's sampling probability with `frequency` (any
      `SamplingProbabilityEstimator`; a streaming one learns from the positives of
      training steps only, i.e. when `training=True`) and corrects the logits
      (`correction="logq"`: `s_ij - a log q_j`; `"positive_uncorrected"`:
      Khrylchenko et al. 2025, see `tfrs_negatives.ops.logq`);
    * adds negatives drawn from the catalogue (`negatives`: `Uniform`,
      `Popularity`, `FullCatalogue`, with or without `InBatch`), embeds them with
      the `candidate_tower` given to `call`, and corrects every logit with the
      probability of the mixture of sources (`tfrs_negatives.ops.mixture`);
    * removes accidental hits across all sources, comparing ids as int64;
    * computes logits in float32, masks with finite constants (mixed precision),
      and computes the loss as one XLA computation;
    * reports per-source negative diagnostics as Keras metrics in training steps
      (`negatives/<source>/mass`, `.../gap`, `.../masked`, `.../distinct` and
      `negatives/positive/mass`; see `tfrs_negatives.metrics.negative_diagnostics`).

    With the defaults (in-batch negatives only, no estimator, no
    `candidate_sampling_probability`, no hit removal) the loss is TFRS's.

    Args:
      frequency: Estimator of the in-batch probability `q`; None for none (a
        `candidate_sampling_probability` passed to `call` is then used).
      negatives: Sources of negatives; None means `[InBatch()]` (TFRS's in-batch
        softmax). Leave `InBatch` out to use the batch's candidates only as
        positives.
      correction: `"logq"`, `"positive_uncorrected"` or None (no correction).
      correction_strength: Multiplier `a` of the correction; 1 is unbiased.
      probability_clip: Lower clip of `q` before the log.
      duplicates: `"keep"`: every draw is its own term, corrected by its expected
        share `Q(j)`; `"mask"`: each distinct candidate counts once (later copies
        masked), corrected by its inclusion probability. None: `"mask"` with
        sampled sources, `"keep"` for in-batch only (TFRS and Yi et al. 2019).
      remove_accidental_hits: Mask candidates equal to the row's positive; None:
        True with sampled or mined sources (a sampled copy of the positive is no
        negative), False for in-batch only (TFRS's default).
      sampled_loss: `"softmax"` (default), `"bpr"`, `"bce"` or `"gbce"`
        (`tfrs_negatives.ops.losses`); the correction applies to the logits of each.
      num_items: Catalogue size for gBCE; default: the first source's catalogue.
      gbce_calibration: gBCE's `t` in `[0, 1]`.
      temperature: Logits are divided by it before correction (as TFRS).
      jit_compile: Compute the loss with XLA (`tf.function(jit_compile=True)`).
      diagnostics: Measure, in every step not called with `training=False`, each
        source's softmax mass, positive-negative score gap (raw scores), masked
        share and distinct candidates, and the positives' mass, as Keras metrics
        named `negatives/<source name>/<statistic>` (they reach `fit` logs,
        progress bars, History and TensorBoard; see
        `tfrs_negatives.metrics.negative_diagnostics`). The sources' names must then
        be distinct. False: no metric, no extra computation.
      diagnostics_stride: Mass, gap and masked share are measured on rows `0, s,
        2s, ...` of each batch (`s = diagnostics_stride`): their cost is about
        `1 / s` of measuring every row, whatever the batch size (every row, `1`,
        is exact but measured at 1.8 times the step time; 32 within 2%).
        `distinct` always counts the whole batch.
      loss: Optional Keras loss on `(labels [B, N], logits [B, N])` replacing
        `sampled_loss` (TFRS's argument).
      metrics, batch_metrics, loss_metrics, num_hard_negatives, name: As in
        `tfrs.tasks.Retrieval`. Metrics and a custom loss hold objects and are not
        part of `get_config`; pass them again when rebuilding from a config.
    """

    def __init__(
        self,
        frequency: Optional[SamplingProbabilityEstimator] = None,
        negatives: Optional[Sequence[NegativeSource]] = None,
        correction: Optional[str] = "logq",
        correction_strength: float = 1.0,
        probability_clip: float = 1e-6,
        duplicates: Optional[str] = None,
        remove_accidental_hits: Optional[bool] = None,
        sampled_loss: str = "softmax",
        num_items: Optional[int] = None,
        gbce_calibration: float = 0.75,
        temperature: Optional[float] = None,
        jit_compile: bool = True,
        diagnostics: bool = True,
        diagnostics_stride: int = 32,
        loss: Optional[tf.keras.losses.Loss] = None,
        metrics: Optional[Union[Sequence[tfrs.metrics.Factorized], tfrs.metrics.Factorized]] = None,
        batch_metrics: Optional[List[tf.keras.metrics.Metric]] = None,
        loss_metrics: Optional[List[tf.keras.metrics.Metric]] = None,
        num_hard_negatives: Optional[int] = None,
        name: Optional[str] = None,
    ) -> None:
        if frequency is not None and not isinstance(frequency, SamplingProbabilityEstimator):
            raise TypeError(
                "`frequency` must be a tfrs_negatives SamplingProbabilityEstimator "
                "(StreamingFrequencyEstimator, ExactFrequencyEstimator, StaticProbabilities) "
                f"or None, got {type(frequency).__name__}."
            )
        negatives = [InBatch()] if negatives is None else list(negatives)
        _check_negatives(negatives)
        sampled = [s for s in negatives if not s.in_batch and not _per_row(s)]
        if correction is not None and correction not in ops.CORRECTIONS:
            raise ValueError(
                f"`correction` must be one of {ops.CORRECTIONS} or None, got {correction!r}."
            )
        if duplicates is not None and duplicates not in DUPLICATES:
            raise ValueError(
                f"`duplicates` must be one of {DUPLICATES} or None, got {duplicates!r}."
            )
        if sampled_loss not in ops.LOSSES:
            raise ValueError(f"`sampled_loss` must be one of {ops.LOSSES}, got {sampled_loss!r}.")
        if num_items is None and sampled_loss == "gbce":
            if not sampled:
                raise ValueError("`num_items` (the catalogue size) is required by the gBCE loss.")
            num_items = sampled[0].catalogue.size
        if not 0.0 <= float(gbce_calibration) <= 1.0:
            raise ValueError(f"`gbce_calibration` must be in [0, 1], got {gbce_calibration!r}.")
        if not 0.0 < float(probability_clip) < 1.0:
            raise ValueError(f"`probability_clip` must be in (0, 1), got {probability_clip!r}.")
        if temperature is not None and not float(temperature) > 0.0:
            raise ValueError(f"`temperature` must be > 0 or None, got {temperature!r}.")
        if not isinstance(diagnostics, bool):
            raise TypeError(f"`diagnostics` must be True or False, got {diagnostics!r}.")
        if (
            isinstance(diagnostics_stride, bool)
            or not isinstance(diagnostics_stride, (int, np.integer))
            or diagnostics_stride < 1
        ):
            raise ValueError(
                f"`diagnostics_stride` must be an integer >= 1, got {diagnostics_stride!r}."
            )
        negative_diagnostics = (
            NegativeDiagnostics([s.name for s in negatives]) if diagnostics else None
        )
        self._requested = dict(duplicates=duplicates, remove_accidental_hits=remove_accidental_hits)
        if remove_accidental_hits is None:
            remove_accidental_hits = len(negatives) > 1 or not negatives[0].in_batch
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
        self.negatives = negatives
        self.correction = correction
        self.correction_strength = float(correction_strength)
        self.probability_clip = float(probability_clip)
        self.duplicates = duplicates or ("mask" if sampled else "keep")
        self.sampled_loss = sampled_loss
        self.num_items = num_items
        self.gbce_calibration = float(gbce_calibration)
        self.jit_compile = bool(jit_compile)
        self.diagnostics = diagnostics
        self.diagnostics_stride = int(diagnostics_stride)
        self._negative_diagnostics = negative_diagnostics
        # Assigned as a list so Keras collects the metrics into `model.metrics`.
        self._diagnostic_metrics = (
            [] if negative_diagnostics is None else negative_diagnostics.metrics
        )
        self._custom_loss = loss is not None

    @property
    def sampled_sources(self) -> List[NegativeSource]:
        """The sources whose draws all rows share (all but `InBatch` and mined ones)."""
        return [s for s in self.negatives if not s.in_batch and not _per_row(s)]

    @property
    def per_row_sources(self) -> List[NegativeSource]:
        """The sources drawing negatives for each row separately (`Mined`)."""
        return [s for s in self.negatives if _per_row(s)]

    @property
    def in_batch_source(self) -> Optional[NegativeSource]:
        """The `InBatch` source, or None if in-batch negatives are not used."""
        return next((s for s in self.negatives if s.in_batch), None)

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
        candidate_tower: Optional[Callable] = None,
        query_ids: Optional[tf.Tensor] = None,
        training: Optional[bool] = None,
    ) -> tf.Tensor:
        """Computes the corrected loss and updates metrics.

        Args:
          query_embeddings: `[B, D]` (or `[B, H, D]`, max over heads) queries.
          candidate_embeddings: `[N0, D]` candidates, `N0 >= B`; row `i < B` is the
            positive of query `i`, rows `>= B` are extra negatives.
          sample_weight: Optional `[B]` weights.
          candidate_sampling_probability: Optional `[N0]` probabilities in `(0, 1]`,
            used instead of `frequency` (in-batch negatives only).
          candidate_ids: `[N0]` int or string ids; required for accidental-hit
            removal, `frequency` and sampled negatives.
          compute_metrics: Update the factorized (top-K) metrics.
          compute_batch_metrics: Update the batch metrics.
          score_mask: Optional `[B, N]` boolean over all columns (given, then each
            source's draws); False entries are excluded.
          candidate_tower: Called on the sampled candidates' features (`[K, ...]`)
            to embed them; required by sampled and mined sources.
          query_ids: Optional `[B]` int or string query ids: anchors of query-side
            mined negatives and keys of their known positives.
          training: Whether this is a training step; required (pass
            `training=training` from `compute_loss`) when `frequency` learns from
            the stream, since Keras does not forward it from `tfrs.Model.train_step`.

        Returns:
          Scalar float32 loss.
        """
        num_queries, num_given = checks.check_embeddings(query_embeddings, candidate_embeddings)
        sampled = self.sampled_sources
        per_row = self.per_row_sources
        in_batch = self.in_batch_source
        uses_probabilities = self.correction is not None and (
            sampled or self.frequency is not None or candidate_sampling_probability is not None
        )
        ids = None
        if (
            self._remove_accidental_hits
            or sampled
            or per_row
            or (self.frequency is not None and candidate_sampling_probability is None)
        ):
            ids = self._candidate_ids(candidate_ids, num_given, sampled)
        columns = draw_columns(candidate_embeddings, ids, sampled, candidate_tower)
        scores = checks.scores(query_embeddings, columns.embeddings)
        raw_positive_scores = tf.linalg.diag_part(scores)
        if self._temperature is not None:
            scores = scores / self._temperature

        probabilities = None
        batch_q = self._in_batch_probabilities(
            candidate_sampling_probability,
            columns.ids,
            num_queries,
            num_given,
            training,
            needed=uses_probabilities and in_batch is not None,
        )
        mask_duplicates = self.duplicates == "mask"
        if uses_probabilities:
            probabilities = mixture_probabilities(
                columns,
                batch_q if in_batch is not None else None,
                num_given,
                sampled,
                mask_duplicates,
            )
        column_excluded = column_log_weight = None
        if sampled or in_batch is None or mask_duplicates or _weighted(in_batch):
            column_excluded, column_log_weight = column_exclusions(
                columns, None if in_batch is None else in_batch.weight, mask_duplicates
            )
        row_ids = row_blocks = None
        if per_row:
            inputs = LogitInputs(
                scores, probabilities, column_excluded, column_log_weight, score_mask
            )
            inputs, row_ids, row_blocks = self._add_row_columns(
                per_row,
                inputs,
                query_embeddings,
                columns.ids[:num_queries],
                query_ids,
                candidate_tower,
                raw_positive_scores,
                num_given,
            )
            scores, probabilities, column_excluded, column_log_weight, score_mask = inputs
        if sample_weight is not None:
            checks.check_length(tf.reshape(sample_weight, [-1]), num_queries, "sample_weight")
        correction = dict(
            probabilities=probabilities,
            correction=self.correction or "logq",
            clip_min=self.probability_clip,
            strength=self.correction_strength,
            positive_ids=columns.ids[:num_queries] if self._remove_accidental_hits else None,
            candidate_ids=columns.ids if self._remove_accidental_hits else None,
            column_excluded=column_excluded,
            column_log_weight=column_log_weight,
            score_mask=score_mask,
        )
        labels = logits = None
        if self._custom_loss or self._num_hard_negatives is not None:
            logits = ops.corrected_logits(scores, **correction)
            labels = tf.eye(num_queries, tf.shape(logits)[1])
            if self._num_hard_negatives is not None:
                logits, labels = tfrs.layers.loss.HardNegativeMining(self._num_hard_negatives)(
                    logits, labels
                )
            loss = self._loss(y_true=labels, y_pred=logits, sample_weight=sample_weight)
        else:
            loss_fn = ops.fused_retrieval_loss if self.jit_compile else ops.retrieval_loss
            loss = loss_fn(
                scores,
                sample_weight,
                self.sampled_loss,
                self.num_items,
                self.gbce_calibration,
                **correction,
            )
            if compute_batch_metrics and self._batch_metrics:
                logits = ops.corrected_logits(scores, **correction)
                labels = tf.eye(num_queries, tf.shape(logits)[1])

        update_ops = [metric.update_state(loss) for metric in self._loss_metrics]
        if self._negative_diagnostics is not None and training is not False:
            statistics = retrieval_statistics(
                scores,
                column_sources(columns, num_given, self.negatives, row_blocks or ()),
                len(self.negatives),
                self.diagnostics_stride,
                self.jit_compile,
                **correction,
            )
            given_ids = columns.ids
            if given_ids is None and candidate_ids is not None:
                given_ids = ops.to_int64_ids(candidate_ids, "candidate_ids")
            distinct = distinct_counts(
                columns, num_given, given_ids, self.negatives, row_ids, row_blocks or ()
            )
            update_ops.extend(
                self._negative_diagnostics.update_state(statistics, distinct, self._temperature)
            )
        if compute_metrics and query_embeddings.shape.rank == 2:
            # Unlike TFRS, only the positives' ids go to the metrics (extra candidate
            # rows would break FactorizedTopK), and metrics that take `query_ids`
            # (e.g. PopularityStratifiedRecall with exclude_seen) receive them.
            true_ids = None if candidate_ids is None else candidate_ids[:num_queries]
            for metric in self._factorized_metrics:
                extra = {}
                if query_ids is not None and _accepts(metric.update_state, "query_ids"):
                    extra["query_ids"] = query_ids
                update_ops.append(
                    metric.update_state(
                        query_embeddings,
                        candidate_embeddings[:num_queries],
                        true_candidate_ids=true_ids,
                        sample_weight=sample_weight,
                        **extra,
                    )
                )
        if compute_batch_metrics:
            for metric in self._batch_metrics:
                update_ops.append(metric.update_state(labels, logits, sample_weight=sample_weight))
        with tf.control_dependencies([op for op in update_ops if op is not None]):
            return tf.identity(loss)

    def _add_row_columns(
        self,
        per_row: List[NegativeSource],
        inputs: LogitInputs,
        query_embeddings: tf.Tensor,
        positive_ids: tf.Tensor,
        query_ids: Optional[tf.Tensor],
        candidate_tower: Optional[Callable],
        raw_positive_scores: tf.Tensor,
        num_given: tf.Tensor,
    ) -> Tuple[LogitInputs, tf.Tensor, list]:
        """Appends the mined `[B, M]` columns and extends every column-level input.

        Args:
          per_row: The per-row (mined) sources.
          inputs: The shared columns' logit inputs (`[B, N]` scores, ...).
          query_embeddings: `[B, D]` queries.
          positive_ids: `[B]` int64 ids of the positives.
          query_ids: Optional `[B]` query ids (query-side anchors, known positives).
          candidate_tower: Embeds the mined candidates.
          raw_positive_scores: `[B]` positive scores before temperature (margin filter).
          num_given: Number of given candidate rows.

        Returns:
          The inputs extended to `N + M` columns, the mined `[B, M]` ids and their
          `(source, start, count)` blocks.
        """
        query_ids = None if query_ids is None else ops.to_int64_ids(query_ids, "query_ids")
        raw_rows, row_ids, blocks = draw_row_columns(
            query_embeddings, per_row, positive_ids, query_ids, candidate_tower
        )
        excluded, row_column_excluded, row_log_weight = row_exclusions(
            blocks, row_ids, positive_ids, query_ids, raw_rows, raw_positive_scores
        )
        rows = raw_rows if self._temperature is None else raw_rows / self._temperature
        scores, probabilities, column_excluded, column_log_weight, score_mask = inputs
        n, m = tf.shape(scores)[1], tf.shape(rows)[1]
        if probabilities is not None:
            # No log-Q term for mined negatives: each counts as one certain term, on the
            # scale of the shared columns' correction ("mask": inclusion probability 1;
            # "keep": expected share 1 / draws, since shares sum to 1 over the draws).
            unit = 1.0 if self.duplicates == "mask" else 1.0 / self._draws(num_given)
            probabilities = tf.concat([probabilities, tf.fill([m], unit)], 0)
        if column_excluded is None:
            column_excluded = tf.zeros([n], tf.bool)
            column_log_weight = tf.zeros([n])
        shared_mask = tf.ones(tf.shape(scores), tf.bool) if score_mask is None else score_mask
        extended = LogitInputs(
            tf.concat([scores, rows], 1),
            probabilities,
            tf.concat([column_excluded, row_column_excluded], 0),
            tf.concat([column_log_weight, row_log_weight], 0),
            tf.concat([shared_mask, tf.logical_not(excluded)], 1),
        )
        return extended, row_ids, blocks

    def _draws(self, num_given: tf.Tensor) -> tf.Tensor:
        """Shared draws of a step: the given candidates (if in-batch) and each source's."""
        draws = tf.zeros([], tf.float32)
        if self.in_batch_source is not None:
            draws += tf.cast(num_given, tf.float32)
        for source in self.sampled_sources:
            draws += tf.cast(source.active_count, tf.float32)
        return tf.maximum(draws, 1.0)

    def _candidate_ids(
        self, candidate_ids: Optional[tf.Tensor], num_given: tf.Tensor, sampled: list
    ) -> tf.Tensor:
        if candidate_ids is None:
            if self._remove_accidental_hits:
                reason = "accidental-hit removal"
            elif sampled:
                reason = "sampled negatives (to mix probabilities and find duplicates)"
            else:
                reason = "`frequency`"
            raise ValueError(
                f"`candidate_ids` is required by {reason}: pass the [num_candidates] ids "
                "of the candidate rows, got None."
            )
        if self.frequency is not None:  # each holds one kind of ids (int or string)
            self.frequency.check_ids(candidate_ids, "candidate_ids")
        for source in self.negatives:
            source.check_ids(candidate_ids)
        ids = ops.to_int64_ids(candidate_ids, "candidate_ids")
        checks.check_length(ids, num_given, "candidate_ids")
        return ids

    def _in_batch_probabilities(
        self,
        given: Optional[tf.Tensor],
        ids: Optional[tf.Tensor],
        num_queries: tf.Tensor,
        num_given: tf.Tensor,
        training: Optional[bool],
        needed: bool,
    ) -> Optional[tf.Tensor]:
        """`[N]` per-draw probability of every column's id among the batch's candidates.

        Counts the positives in `frequency` when training (whether or not the
        probabilities are needed), so the estimator follows the data.
        """
        if given is not None:
            if self.sampled_sources:
                raise ValueError(
                    "`candidate_sampling_probability` covers only the given candidates; with "
                    "sampled negatives give the task a `frequency` estimator instead."
                )
            return checks.checked_probabilities(given, num_given)
        if self.frequency is None:
            if needed and self.sampled_sources:
                raise ValueError(
                    "Mixing in-batch negatives with sampled ones needs the in-batch sampling "
                    "probability: give the task a `frequency` estimator (e.g. "
                    "StreamingFrequencyEstimator()), or leave InBatch out of `negatives`."
                )
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
        return tf.concat([positives, self.frequency.probability(ids[num_queries:])], axis=0)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            frequency=(
                None if self.frequency is None else tf.keras.layers.serialize(self.frequency)
            ),
            negatives=[tf.keras.layers.serialize(s) for s in self.negatives],
            correction=self.correction,
            correction_strength=self.correction_strength,
            probability_clip=self.probability_clip,
            duplicates=self._requested["duplicates"],
            remove_accidental_hits=self._requested["remove_accidental_hits"],
            sampled_loss=self.sampled_loss,
            num_items=self.num_items,
            gbce_calibration=self.gbce_calibration,
            temperature=self._temperature,
            jit_compile=self.jit_compile,
            diagnostics=self.diagnostics,
            diagnostics_stride=self.diagnostics_stride,
            num_hard_negatives=self._num_hard_negatives,
        )
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "CorrectedRetrieval":
        config = dict(config)
        if config.get("frequency") is not None:
            config["frequency"] = tf.keras.layers.deserialize(config["frequency"])
        config["negatives"] = [tf.keras.layers.deserialize(s) for s in config["negatives"]]
        return cls(**config)


def _check_negatives(negatives: list) -> None:
    if not negatives:
        raise ValueError(
            "`negatives` must list at least one source (e.g. [InBatch()]), got an empty list."
        )
    for source in negatives:
        if not isinstance(source, NegativeSource):
            raise TypeError(
                "`negatives` must hold tfrs_negatives.negatives sources (InBatch, Uniform, "
                f"Popularity, FullCatalogue), got {type(source).__name__}."
            )
    if sum(s.in_batch for s in negatives) > 1:
        raise ValueError("`negatives` lists InBatch more than once.")
    weights = [s.initial_weight for s in negatives]
    if not sum(weights) > 0:
        raise ValueError(
            f"The weights of `negatives` must sum to a positive number, got {weights}: with "
            "every source at weight 0 there is no negative."
        )


def _accepts(function: Callable, argument: str) -> bool:
    return argument in inspect.signature(function).parameters


def _per_row(source: NegativeSource) -> bool:
    return bool(getattr(source, "per_row", False))


def _weighted(in_batch: Optional[NegativeSource]) -> bool:
    """Whether the in-batch weight may differ from 1 (set explicitly, or by a curriculum)."""
    return in_batch is not None and in_batch.initial_weight != 1.0
