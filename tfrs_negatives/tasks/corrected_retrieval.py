"""`CorrectedRetrieval`: TFRS retrieval with log-Q correction, mixed negatives and losses."""

import inspect
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from tfrs_negatives import ops
from tfrs_negatives.estimators.base import SamplingProbabilityEstimator
from tfrs_negatives.metrics.negative_diagnostics import NegativeDiagnostics
from tfrs_negatives.negatives.row_draws import RowContext
from tfrs_negatives.negatives.sources import InBatch, NegativeSource
from tfrs_negatives.ops.diagnostics import retrieval_statistics
from tfrs_negatives.ops.losses import positive_logits
from tfrs_negatives.tasks import checks, replicas, row_mixture
from tfrs_negatives.tasks.columns import (
    Columns,
    RowColumns,
    column_exclusions,
    column_scores,
    column_sources,
    distinct_counts,
    draw_columns,
    draw_row_columns,
    joined,
    mixture_probabilities,
    row_exclusions,
)

import tensorflow as tf
import tensorflow_recommenders as tfrs

DUPLICATES = ("keep", "mask")


class Batch(NamedTuple):
    """What one call was given, checked.

    Attributes:
      queries: `[B, D]` (or `[B, H, D]`) query embeddings.
      candidates: `[N0, D]` given candidate embeddings; row `i < B` is query `i`'s positive.
      num_queries: Scalar `B`.
      num_given: Scalar `N0`.
      ids: `[N0]` int64 candidate ids, or None when no id is needed.
      query_ids: `[B]` int64 query ids, or None.
      given_ids: The `candidate_ids` as given (for the factorized metrics), or None.
      sample_weight: Optional `[B]` weights.
      given_probabilities: The `candidate_sampling_probability` given, or None.
      score_mask: The `score_mask` given, or None.
      candidate_tower: The `candidate_tower` given, or None.
      training: The `training` flag given.
      replica: Where this replica's rows sit among candidates gathered across
        replicas (`tfrs_negatives.tasks.replicas`), or None: `candidates`, `ids`,
        `num_given` and `given_probabilities` are then this call's own.
    """

    queries: tf.Tensor
    candidates: tf.Tensor
    num_queries: tf.Tensor
    num_given: tf.Tensor
    ids: Optional[tf.Tensor]
    query_ids: Optional[tf.Tensor]
    given_ids: Optional[tf.Tensor]
    sample_weight: Optional[tf.Tensor]
    given_probabilities: Optional[tf.Tensor]
    score_mask: Optional[tf.Tensor]
    candidate_tower: Optional[Callable]
    training: Optional[bool]
    replica: Optional[replicas.ReplicaSlice] = None
    negative_ids: Optional[tf.Tensor] = None

    def own(self, values: tf.Tensor) -> tf.Tensor:
        """The `[B, ...]` rows of `values` (given-candidate rows) that are this call's positives."""
        if self.replica is None:
            return values[: self.num_queries]
        start = self.replica.offset
        return values[start : start + self.num_queries]


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class CorrectedRetrieval(tfrs.tasks.Retrieval):
    """Softmax retrieval over in-batch and sampled negatives, corrected for how they were drawn.

    A drop-in subclass of `tfrs.tasks.Retrieval`: call it in `compute_loss` with
    query and candidate embeddings (row `i` of each is a positive pair; extra
    candidate rows are extra negatives for every query). With only TFRS's
    arguments it is TFRS's task: the same loss, the same `metrics` and logs
    (TFRS's own `tasks/retrieval_test.py` passes against it). On top of TFRS, each
    asked for by an argument, it

    * estimates each candidate's sampling probability with `frequency` (any
      `SamplingProbabilityEstimator`; a streaming one learns from the positives of
      training steps only, i.e. when `training=True`) and corrects the logits
      (`correction="logq"`: `s_ij - a log q_j`; `"positive_uncorrected"`:
      Khrylchenko et al. 2025, see `tfrs_negatives.ops.logq`);
    * adds negatives drawn from the catalogue (`negatives`: `Uniform`,
      `Popularity`, `FullCatalogue`, `Mined`, with or without `InBatch`), embeds them
      with the `candidate_tower` given to `call`, and corrects every logit with the
      probability of the mixture of sources (`tfrs_negatives.ops.mixture`).
      Without `InBatch` it is sampled softmax: each row's logits are its positive's
      (a row-wise product) and the draws', `[B, 1 + K]`, as `tf.nn.sampled_softmax_loss`;
    * removes accidental hits across all sources, comparing ids as int64;
    * computes logits in float32, masks with finite constants (mixed precision),
      and computes the loss as one XLA computation;
    * reports per-source negative diagnostics as Keras metrics in training steps
      (`negatives/<source>/mass`, `.../gap`, `.../masked`, `.../distinct` and
      `negatives/positive/mass`; see `tfrs_negatives.metrics.negative_diagnostics`),
      by default only when an estimator or a non-in-batch source is used.

    Args:
      frequency: Estimator of the in-batch probability `q`; None for none (a
        `candidate_sampling_probability` passed to `call` is then used).
      negatives: Sources of negatives; None means `[InBatch()]` (TFRS's in-batch
        softmax). Leave `InBatch` out for sampled softmax: the batch's candidates
        are then only their own rows' positives.
      correction: `"logq"`, `"positive_uncorrected"` or None (no correction).
      correction_strength: Multiplier `a >= 0` of the correction; 1 is unbiased.
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
      hardness: Hardness tilt `beta >= 0` of the softmax's negatives (Robinson et
        al. 2021, "Contrastive Learning with Hard Negative Samples", ICLR, HCL):
        row `i`'s negative term `e^{l_ij}` is weighted by `w_ij = n_i e^{beta s_ij}
        / sum_k e^{beta s_ik}` over its `n_i` valid negatives (`s` the scores after
        temperature, before correction; weights held constant in the gradient), so
        harder negatives count more. 0 (default): no tilt.
      positive_prior: Debiasing prior `tau+` in `[0, 1)` (Chuang et al. 2020,
        "Debiased Contrastive Learning", NeurIPS, where STL10 linear accuracy went
        from 80.15 to 84.26): the share of a row's negatives taken to be unlabelled
        positives. The negatives' term becomes `g_i = max((sum_j w_ij e^{l_ij} -
        tau+ n_i e^{l_ip}) / (1 - tau+), n_i min_j w_ij e^{l_ij})` and the row's
        loss `log(1 + g_i e^{-l_ip})` (the floor, the row's smallest weighted term,
        replaces the paper's `N e^{-1/t}` of cosine scores; see
        `tfrs_negatives.ops.hard_weighting`). 0 (default): none. Both options need
        `sampled_loss="softmax"`, and neither goes with `loss` or
        `num_hard_negatives` (which replace the loss).
      temperature: Logits are divided by it before correction (as TFRS).
      jit_compile: Compute the loss with XLA (`tf.function(jit_compile=True)`).
      diagnostics: Measure, in every step not called with `training=False`, each
        source's softmax mass, positive-negative score gap (raw scores), masked
        share and distinct candidates, and the positives' mass, as Keras metrics
        named `negatives/<source name>/<statistic>` (they reach `fit` logs,
        progress bars, History and TensorBoard; see
        `tfrs_negatives.metrics.negative_diagnostics`). The sources' names must then
        be distinct. None (default): on when `frequency` is given or a source other
        than `InBatch` is used, off otherwise (the task is then TFRS's, metric for
        metric). False: no metric, no extra computation.
      diagnostics_stride: Mass, gap and masked share are measured on rows `0, s,
        2s, ...` of each batch (`s = diagnostics_stride`): their cost is about
        `1 / s` of measuring every row, whatever the batch size (every row, `1`,
        is exact but measured at 1.8 times the step time; 32 within 2%).
        `distinct` always counts the whole batch.
      cross_replica_negatives: Under a synchronous `tf.distribute` strategy
        with several replicas (`MirroredStrategy`, `MultiWorkerMirroredStrategy`,
        `TPUStrategy`), whether each replica's queries are scored against the
        given candidates of every replica (gathered with `all_gather`, with
        their ids and probabilities), so that training equals one device on the
        global batch whatever the number of replicas. None (default) and True:
        gathered (None: per worker under `ParameterServerStrategy`, whose
        workers step asynchronously; True raises there). False: each replica's
        own slice, as TFRS (cheaper, but results depend on the replica count).
        Without `InBatch` nothing is gathered (each row sees its own positive and
        the sources' draws).
      check_finite: Check that the query, given and drawn candidate embeddings hold
        no NaN or infinity, failing with an error that names which (off by
        default, as TFRS: a NaN embedding then gives a NaN loss).
      loss: Optional Keras loss on `(labels [B, N], logits [B, N])` replacing
        `sampled_loss` (TFRS's argument).
      metrics, batch_metrics, loss_metrics, num_hard_negatives, name: As in
        `tfrs.tasks.Retrieval`. Metrics and a custom loss hold objects and are not
        part of `get_config`; pass them again when rebuilding from a config.
    """

    def __init__(  # noqa: PLR0913 (TFRS's arguments, then ours)
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
        hardness: float = 0.0,
        positive_prior: float = 0.0,
        temperature: Optional[float] = None,
        jit_compile: bool = True,
        diagnostics: Optional[bool] = None,
        diagnostics_stride: int = 32,
        check_finite: bool = False,
        cross_replica_negatives: Optional[bool] = None,
        loss: Optional[tf.keras.losses.Loss] = None,
        metrics: Optional[Union[Sequence[tfrs.metrics.Factorized], tfrs.metrics.Factorized]] = None,
        batch_metrics: Optional[List[tf.keras.metrics.Metric]] = None,
        loss_metrics: Optional[List[tf.keras.metrics.Metric]] = None,
        num_hard_negatives: Optional[int] = None,
        name: Optional[str] = None,
    ) -> None:
        checks.check_frequency(frequency)
        negatives = [InBatch()] if negatives is None else list(negatives)
        checks.check_negatives(negatives)
        checks.check_choice(correction, "correction", ops.CORRECTIONS, allow_none=True)
        checks.check_choice(duplicates, "duplicates", DUPLICATES, allow_none=True)
        checks.check_choice(sampled_loss, "sampled_loss", ops.LOSSES)
        checks.check_correction_strength(correction_strength)
        checks.check_open_unit(probability_clip, "probability_clip")
        checks.check_closed_unit(gbce_calibration, "gbce_calibration")
        checks.check_hardness(hardness)
        checks.check_positive_prior(positive_prior)
        checks.check_reweighting(
            hardness, positive_prior, sampled_loss, loss is not None, num_hard_negatives
        )
        checks.check_temperature(temperature)
        checks.check_flag(diagnostics, "diagnostics", allow_none=True)
        checks.check_flag(check_finite, "check_finite")
        checks.check_flag(cross_replica_negatives, "cross_replica_negatives", allow_none=True)
        checks.check_stride(diagnostics_stride)
        beyond_tfrs = frequency is not None or any(not s.in_batch for s in negatives)
        self._requested = dict(
            duplicates=duplicates,
            remove_accidental_hits=remove_accidental_hits,
            diagnostics=diagnostics,
        )
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
        self.duplicates = duplicates or ("mask" if self.sampled_sources else "keep")
        self.sampled_loss = sampled_loss
        self.num_items = checks.gbce_num_items(num_items, sampled_loss, self.sampled_sources)
        self.gbce_calibration = float(gbce_calibration)
        self.hardness = float(hardness)
        self.positive_prior = float(positive_prior)
        self.jit_compile = bool(jit_compile)
        self.diagnostics = beyond_tfrs if diagnostics is None else diagnostics
        self.diagnostics_stride = int(diagnostics_stride)
        self.check_finite = check_finite
        self.cross_replica_negatives = cross_replica_negatives
        self._negative_diagnostics = (
            NegativeDiagnostics([s.name for s in negatives]) if self.diagnostics else None
        )
        # Assigned as a list so Keras collects the metrics into `model.metrics`.
        self._diagnostic_metrics = (
            [] if self._negative_diagnostics is None else self._negative_diagnostics.metrics
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

    def call(  # noqa: PLR0913 (TFRS's arguments, then ours)
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
        negative_ids: Optional[tf.Tensor] = None,
    ) -> tf.Tensor:
        """Computes the corrected loss and updates metrics.

        The phases, in order: the checked batch, the candidate columns (the
        batch's and each source's draws), the logit inputs (scores, probabilities,
        masks, mined columns), the loss, the metrics.

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
        given = Batch(
            query_embeddings,
            candidate_embeddings,
            num_queries,
            num_given,
            None,
            query_ids,
            candidate_ids,
            sample_weight,
            candidate_sampling_probability,
            score_mask,
            candidate_tower,
            training,
            negative_ids=negative_ids,
        )
        if negative_ids is not None and not any(
            getattr(s, "side", None) == "features" for s in self.per_row_sources
        ):
            raise ValueError(
                "`negative_ids` was given but no negative source reads it: add a "
                "`negatives.FromFeatures` source to the task's `negatives`."
            )
        return self._run(given, compute_metrics, compute_batch_metrics)

    # Not converted by autograph: every branch is Python's, on static values (which
    # sources, which options); converting this module's functions cost most of the
    # first step's tracing time (measured in benchmarks/peer_sampled_softmax.py).
    @tf.autograph.experimental.do_not_convert
    def _run(self, given: Batch, compute_metrics: bool, compute_batch_metrics: bool) -> tf.Tensor:
        """The phases of a call: checked batch, columns, logit inputs, loss, metrics."""
        batch = self._global_batch(self._checked_batch(given))
        columns = self._candidate_columns(batch)
        scores, inputs, rows = self._logit_inputs(batch, columns)
        request = None
        if self._negative_diagnostics is not None and batch.training is not False:
            segments = column_sources(columns, batch.num_given, self.negatives, rows)
            request = ops.StatisticsRequest(segments, len(self.negatives), self.diagnostics_stride)
        loss, statistics, labels, logits = self._loss_and_logits(
            scores, inputs, batch, compute_batch_metrics, request
        )
        updates = [metric.update_state(loss) for metric in self._loss_metrics]
        if statistics is not None:
            updates.extend(self._diagnostic_updates(statistics, batch, columns, rows))
        if compute_metrics and batch.queries.shape.rank == 2:
            updates.extend(self._factorized_updates(batch))
        if compute_batch_metrics:
            for metric in self._batch_metrics:
                weights = batch.sample_weight
                updates.append(metric.update_state(labels, logits, sample_weight=weights))
        updates.extend(self._after_step(batch, loss))
        with tf.control_dependencies([op for op in updates if op is not None]):
            return tf.identity(loss)

    def _after_step(self, batch: Batch, loss: tf.Tensor) -> list:
        """Hooks of sources that learn from the step (`CrossBatch` enqueues), after the loss."""
        hooked = [s for s in self.sampled_sources if hasattr(s, "after_step")]
        if not hooked:
            return []
        with tf.control_dependencies([loss]):
            ids = batch.own(batch.ids)
            embeddings = tf.stop_gradient(tf.cast(batch.own(batch.candidates), tf.float32))
            probabilities = None
            if self.frequency is not None:
                probabilities = self.frequency.probability(ids)
            elif batch.given_probabilities is not None:
                probabilities = batch.own(tf.cast(batch.given_probabilities, tf.float32))
            return [s.after_step(ids, embeddings, probabilities, batch.training) for s in hooked]

    # Phase 1: the checked batch.

    def _checked_batch(self, given: Batch) -> Batch:
        """The call's inputs checked, ids as int64, finite embeddings if asked."""
        if given.sample_weight is not None:
            weights = tf.reshape(given.sample_weight, [-1])
            checks.check_length(weights, given.num_queries, "sample_weight")
        queries, candidates = given.queries, given.candidates
        if self.check_finite:
            queries = checks.finite(queries, "`query_embeddings`")
            candidates = checks.finite(candidates, "`candidate_embeddings`")
        self._check_id_kinds(given.given_ids, given.query_ids)
        ids = None
        if self._needs_ids(given.given_probabilities):
            ids = self._candidate_ids(given.given_ids, given.num_given)
        query_ids = given.query_ids
        if query_ids is not None:
            query_ids = ops.to_int64_ids(query_ids, "query_ids")
        return given._replace(queries=queries, candidates=candidates, ids=ids, query_ids=query_ids)

    def _global_batch(self, batch: Batch) -> Batch:
        """The batch with every replica's given candidates under a strategy (see `replicas`)."""
        if self.in_batch_source is None:
            return batch
        context = replicas.gathering_context(self.cross_replica_negatives)
        if context is None:
            return batch
        if batch.score_mask is not None:
            raise ValueError(
                "`score_mask` covers this replica's candidate columns, but with "
                "cross-replica negatives the columns are every replica's: pass "
                "cross_replica_negatives=False to the task to use a `score_mask` under "
                f"{type(tf.distribute.get_strategy()).__name__}."
            )
        probabilities = batch.given_probabilities
        if probabilities is not None:
            probabilities = checks.checked_probabilities(probabilities, batch.num_given)
        candidates = replicas.gathered(context, batch.candidates)
        return batch._replace(
            candidates=candidates,
            num_given=tf.shape(candidates)[0],
            ids=replicas.gathered(context, batch.ids),
            given_probabilities=replicas.gathered(context, probabilities),
            replica=replicas.replica_slice(context, batch.num_given),
        )

    def _check_id_kinds(self, candidate_ids: Any, query_ids: Any) -> None:
        """Raises if ids are not of the kind (int or string) the estimator and sources hold."""
        if self.frequency is not None and candidate_ids is not None:
            self.frequency.check_ids(candidate_ids, "candidate_ids")
        for source in self.negatives:
            source.check_ids(candidate_ids, query_ids)

    def _needs_ids(self, candidate_sampling_probability: Optional[tf.Tensor]) -> bool:
        return bool(
            self._remove_accidental_hits
            or self.sampled_sources
            or self.per_row_sources
            or (self.frequency is not None and candidate_sampling_probability is None)
        )

    def _candidate_ids(self, candidate_ids: Optional[tf.Tensor], num_given: tf.Tensor):
        if candidate_ids is None:
            if self._remove_accidental_hits:
                reason = "accidental-hit removal"
            elif self.sampled_sources:
                reason = "sampled negatives (to mix probabilities and find duplicates)"
            elif self.per_row_sources:
                reason = "mined negatives (their anchors)"
            else:
                reason = "`frequency`"
            raise ValueError(
                f"`candidate_ids` is required by {reason}: pass the [num_candidates] ids "
                "of the candidate rows, got None."
            )
        ids = ops.to_int64_ids(candidate_ids, "candidate_ids")
        checks.check_length(ids, num_given, "candidate_ids")
        return ids

    # Phase 2: the candidate columns and the logit inputs.

    def _candidate_columns(self, batch: Batch) -> Columns:
        """The batch's columns and each sampled source's draws (`[B, 1 + K]` without InBatch)."""
        columns = draw_columns(
            batch.candidates,
            batch.ids,
            self.sampled_sources,
            batch.candidate_tower,
            positive_first=self.in_batch_source is None,
        )
        if not self.check_finite:
            return columns
        drawn = checks.finite(columns.embeddings, "the sampled candidates' embeddings")
        return columns._replace(embeddings=drawn)

    def _logit_inputs(
        self, batch: Batch, columns: Columns
    ) -> Tuple[tf.Tensor, ops.CorrectionInputs, Optional[RowColumns]]:
        """`(scores, CorrectionInputs, mined RowColumns or None)` of the step.

        The scores are column blocks (`[B, n_k]`, joined they are `[B, N]`), so the
        positives' column of sampled softmax is never concatenated outside the fused loss.
        """
        raw_blocks = column_scores(batch.queries, batch.candidates, columns)
        scores = raw_blocks
        if self._temperature is not None:
            scores = tuple(block / self._temperature for block in raw_blocks)
        probabilities, positive_probabilities = self._probabilities(batch, columns)
        excluded = log_weight = None
        if self._masks_columns():
            in_batch = self.in_batch_source
            excluded, log_weight = column_exclusions(
                columns, None if in_batch is None else in_batch.weight, self._masks_duplicates
            )
        hits = self._remove_accidental_hits and columns.ids is not None
        inputs = ops.CorrectionInputs(
            probabilities=probabilities,
            method=self.correction or "logq",
            clip_min=self.probability_clip,
            strength=self.correction_strength,
            positive_ids=batch.own(batch.ids) if hits else None,
            candidate_ids=columns.ids if hits else None,
            column_excluded=excluded,
            column_log_weight=log_weight,
            score_mask=_layout_score_mask(batch.score_mask, columns, batch),
            positive_columns=_positive_columns(batch, columns),
            positive_probabilities=positive_probabilities,
        )
        if not self.per_row_sources:
            return scores, inputs, None
        first = raw_blocks[0]
        positive_scores = positive_logits(first, inputs.positive_columns)
        return self._add_row_columns(scores, inputs, batch, positive_scores, columns, raw_blocks)

    @property
    def _loss_choice(self) -> ops.LossChoice:
        return ops.LossChoice(
            self.sampled_loss,
            self.num_items,
            self.gbce_calibration,
            self.hardness,
            self.positive_prior,
        )

    @property
    def _masks_duplicates(self) -> bool:
        return self.duplicates == "mask"

    def _masks_columns(self) -> bool:
        in_batch = self.in_batch_source
        return bool(
            self.sampled_sources
            or in_batch is None
            or self._masks_duplicates
            or in_batch.initial_weight != 1.0
        )

    def _probabilities(
        self, batch: Batch, columns: Columns
    ) -> Tuple[Optional[tf.Tensor], Optional[tf.Tensor]]:
        """`(probabilities [N], positive_probabilities [B] or None)` of the mixture, or Nones.

        Counts the positives in `frequency` when training (whether or not the
        probabilities are needed), so the estimator follows the data.
        """
        sampled = self.sampled_sources
        in_batch = self.in_batch_source is not None
        uses = self.correction is not None and bool(
            sampled or self.frequency is not None or batch.given_probabilities is not None
        )
        lookup = columns.ids if in_batch else batch.ids
        batch_q = self._in_batch_probabilities(batch, lookup, needed=uses and in_batch)
        if not uses or not (in_batch or sampled):
            return None, None
        mix = self._masks_duplicates
        if in_batch:
            # The batch's q is also the per-draw probability of sources following the stream.
            mixture = mixture_probabilities(
                columns.ids, batch_q, batch.num_given, sampled, mix, stream_probabilities=batch_q
            )
            return mixture, None
        positives = batch.own(batch.ids)
        column_q = positive_q = None
        if self.frequency is not None and any(s.follows_stream for s in sampled):
            column_q = self.frequency.probability(columns.ids)  # read after the step's update
            positive_q = self.frequency.probability(positives)
        return (
            mixture_probabilities(columns.ids, None, 0, sampled, mix, column_q),
            mixture_probabilities(positives, None, 0, sampled, mix, positive_q),
        )

    def _in_batch_probabilities(
        self, batch: Batch, ids: Optional[tf.Tensor], needed: bool
    ) -> Optional[tf.Tensor]:
        """`[N]` per-draw probability of every id of `ids` among the batch's candidates."""
        if batch.given_probabilities is not None:
            if self.sampled_sources:
                raise ValueError(
                    "`candidate_sampling_probability` covers only the given candidates; with "
                    "sampled negatives give the task a `frequency` estimator instead."
                )
            return checks.checked_probabilities(batch.given_probabilities, batch.num_given)
        if self.frequency is None:
            if needed and self.sampled_sources:
                raise ValueError(
                    "Mixing in-batch negatives with sampled ones needs the in-batch sampling "
                    "probability: give the task a `frequency` estimator (e.g. "
                    "StreamingFrequencyEstimator()), or leave InBatch out of `negatives`."
                )
            return None
        if self.frequency.updates_in_training and batch.training is None:
            raise ValueError(
                f"`training` is None but `frequency` ({type(self.frequency).__name__}) learns "
                "from training steps: pass `training=training` when calling the task in "
                "`compute_loss` (Keras does not forward it from `tfrs.Model.train_step`)."
            )
        positives = self.frequency(batch.own(ids), training=batch.training)
        if batch.replica is not None:  # all candidates, read after the step's update
            with tf.control_dependencies([positives]):
                return self.frequency.probability(ids)
        if ids.shape[0] is not None and ids.shape[0] == positives.shape[0]:
            return positives
        rest = self.frequency.probability(ids[batch.num_queries :])
        return tf.concat([positives, rest], axis=0)

    def _add_row_columns(  # noqa: PLR0913 (the step's shared columns, then the rows')
        self,
        scores: Tuple[tf.Tensor, ...],
        inputs: ops.CorrectionInputs,
        batch: Batch,
        raw_positive_scores: tf.Tensor,
        columns: Columns,
        raw_blocks: Tuple[tf.Tensor, ...],
    ) -> Tuple[Tuple[tf.Tensor, ...], ops.CorrectionInputs, RowColumns]:
        """Appends the mined `[B, M]` columns and extends every column-level input."""
        positive_ids = batch.own(batch.ids)
        context = RowContext(
            tf.cast(batch.queries, tf.float32),
            positive_ids,
            tf.cast(batch.own(batch.candidates), tf.float32),
            raw_positive_scores,
            batch.candidate_tower,
            batch.training,
            batch.query_ids,
        )
        rows = draw_row_columns(
            batch.queries,
            self.per_row_sources,
            positive_ids,
            batch.query_ids,
            batch.candidate_tower,
            batch.negative_ids,
            context,
        )
        if self.check_finite:
            rows = rows._replace(scores=checks.finite(rows.scores, "the mined candidates' scores"))
        excluded, row_column_excluded, row_log_weight = row_exclusions(
            rows, positive_ids, batch.query_ids, raw_positive_scores
        )
        row_scores = rows.scores
        if self._temperature is not None:
            row_scores = row_scores / self._temperature
        if rows.probabilities is not None:
            scores, row_scores, excluded = self._mixture_corrected(
                scores, row_scores, excluded, rows, batch, columns, raw_blocks, inputs
            )
        n = tf.add_n([tf.shape(block)[1] for block in scores])
        m = tf.shape(row_scores)[1]
        probabilities = inputs.probabilities
        if probabilities is not None:
            # No log-Q term for mined negatives: each counts as one certain term, on the
            # scale of the shared columns' correction ("mask": inclusion probability 1;
            # "keep": expected share 1 / draws, since shares sum to 1 over the draws).
            unit = 1.0 if self._masks_duplicates else 1.0 / self._draws(batch.num_given)
            probabilities = tf.concat([probabilities, tf.fill([m], unit)], 0)
        column_excluded = inputs.column_excluded
        column_log_weight = inputs.column_log_weight
        if column_excluded is None:
            column_excluded = tf.zeros([n], tf.bool)
            column_log_weight = tf.zeros([n])
        shared_mask = inputs.score_mask
        if shared_mask is None:
            shared_mask = tf.ones([batch.num_queries, n], tf.bool)
        extended = inputs._replace(
            probabilities=probabilities,
            column_excluded=tf.concat([column_excluded, row_column_excluded], 0),
            column_log_weight=tf.concat([column_log_weight, row_log_weight], 0),
            score_mask=tf.concat([shared_mask, tf.logical_not(excluded)], 1),
        )
        return (*scores, row_scores), extended, rows

    def _mixture_corrected(  # noqa: PLR0913 (the step's columns, both kinds)
        self,
        scores: Tuple[tf.Tensor, ...],
        row_scores: tf.Tensor,
        excluded: tf.Tensor,
        rows: RowColumns,
        batch: Batch,
        columns: Columns,
        raw_blocks: Tuple[tf.Tensor, ...],
        inputs: ops.CorrectionInputs,
    ) -> Tuple[Tuple[tf.Tensor, ...], tf.Tensor, tf.Tensor]:
        """`(scores, row_scores, excluded)` corrected by the mixture with per-row samplers.

        See `tfrs_negatives.tasks.row_mixture`: every column of row `i` is corrected
        by the mixture's probability at `(i, j)`. The difference from the
        correction the loss applies (the shared `Q(j)`, the mined unit) is folded
        into the scores: `s - a log q_i(j) + a log q_loss(j)`.
        """
        mask, draws = self._masks_duplicates, self._draws(batch.num_given)
        shared_corrected = inputs.probabilities is not None
        shared_row_q = self._shared_probabilities_of(rows.ids, batch) if shared_corrected else None
        log_q, duplicate = row_mixture.row_column_log_q(
            rows, shared_row_q, mask, draws, self.probability_clip
        )
        excluded = tf.logical_or(excluded, duplicate)
        if self.correction is None:
            return scores, row_scores, excluded
        a = self.correction_strength
        unit = -tf.math.log(draws) if shared_corrected and not mask else 0.0
        row_scores = row_scores + a * (unit - tf.stop_gradient(log_q))
        if not shared_corrected:
            return scores, row_scores, excluded
        shift = row_mixture.shared_column_shift(
            rows,
            columns.ids,
            joined(raw_blocks),
            inputs.probabilities,
            mask,
            draws,
            self.probability_clip,
            columns.positive_first,
        )
        widths = [tf.shape(block)[1] for block in scores]
        shifts = tf.split(-a * tf.stop_gradient(shift), widths, axis=1)
        return tuple(b + d for b, d in zip(scores, shifts)), row_scores, excluded

    def _shared_probabilities_of(self, ids: tf.Tensor, batch: Batch) -> tf.Tensor:
        """`[B, M]` the shared sources' mixture probability at per-row ids `[B, M]`.

        The in-batch part needs the estimator (`frequency`): with only a given
        `candidate_sampling_probability` it is unknown beyond the given rows and
        taken as 0.
        """
        flat = tf.reshape(ids, [-1])
        q = None
        if self.frequency is not None:
            q = self.frequency.probability(flat)
        in_batch = self.in_batch_source is not None
        if in_batch and q is None:
            q = tf.zeros(tf.shape(flat), tf.float32)
        mixture = mixture_probabilities(
            flat,
            q if in_batch else None,
            batch.num_given if in_batch else 0,
            self.sampled_sources,
            self._masks_duplicates,
            stream_probabilities=q,
        )
        return tf.reshape(mixture, tf.shape(ids))

    def _draws(self, num_given: tf.Tensor) -> tf.Tensor:
        """Shared draws of a step: the given candidates (if in-batch) and each source's."""
        draws = tf.zeros([], tf.float32)
        if self.in_batch_source is not None:
            draws += tf.cast(num_given, tf.float32)
        for source in self.sampled_sources:
            draws += tf.cast(source.active_draws(), tf.float32)
        return tf.maximum(draws, 1.0)

    # Phase 3: the loss.

    def _loss_and_logits(
        self,
        blocks: Tuple[tf.Tensor, ...],
        inputs: ops.CorrectionInputs,
        batch: Batch,
        compute_batch_metrics: bool,
        request: Optional[ops.StatisticsRequest],
    ) -> Tuple[tf.Tensor, Any, Optional[tf.Tensor], Optional[tf.Tensor]]:
        """`(loss, statistics, labels, logits)` from the scores' column `blocks`.

        Statistics (of the negative diagnostics) only with a `request`; labels and
        logits only when a metric or the loss needs them. The XLA path computes the
        loss, its gradient and the statistics in one compiled computation.
        """
        if self.jit_compile and not (self._custom_loss or self._num_hard_negatives is not None):
            loss, statistics = ops.fused_loss_and_statistics(
                blocks, inputs, batch.sample_weight, self._loss_choice, request
            )
            labels = logits = None
            if compute_batch_metrics and self._batch_metrics:
                logits = ops.corrected_logits(joined(blocks), inputs)
                labels = _labels(inputs, logits)
            return loss, statistics, labels, logits
        scores = joined(blocks)
        statistics = None
        if request is not None:
            statistics = retrieval_statistics(scores, inputs, request, self.jit_compile)
        if not (self._custom_loss or self._num_hard_negatives is not None):
            loss = ops.retrieval_loss(scores, inputs, batch.sample_weight, self._loss_choice)
            logits = labels = None
            if compute_batch_metrics and self._batch_metrics:
                logits = ops.corrected_logits(scores, inputs)
                labels = _labels(inputs, logits)
            return loss, statistics, labels, logits
        logits = ops.corrected_logits(scores, inputs)
        labels = _labels(inputs, logits)
        if self._num_hard_negatives is not None:
            mining = tfrs.layers.loss.HardNegativeMining(self._num_hard_negatives)
            logits, labels = mining(logits, labels)
        loss = self._loss(y_true=labels, y_pred=logits, sample_weight=batch.sample_weight)
        return loss, statistics, labels, logits

    # Phase 4: the metrics.

    def _diagnostic_updates(
        self,
        statistics: Any,
        batch: Batch,
        columns: Columns,
        rows: Optional[RowColumns],
    ) -> list:
        given_ids = batch.ids
        if given_ids is None and batch.given_ids is not None:
            given_ids = ops.to_int64_ids(batch.given_ids, "candidate_ids")
        distinct = distinct_counts(columns, given_ids, self.negatives, rows)
        return self._negative_diagnostics.update_state(statistics, distinct, self._temperature)

    def _factorized_updates(self, batch: Batch) -> list:
        # Unlike TFRS, only the positives' ids go to the metrics (extra candidate
        # rows would break FactorizedTopK), and metrics that take `query_ids`
        # (e.g. PopularityStratifiedRecall with exclude_seen) receive them.
        given = batch.given_ids
        true_ids = None if given is None else given[: batch.num_queries]
        updates = []
        for metric in self._factorized_metrics:
            extra = {}
            if batch.query_ids is not None and _accepts(metric.update_state, "query_ids"):
                extra["query_ids"] = batch.query_ids
            updates.append(
                metric.update_state(
                    batch.queries,
                    batch.own(batch.candidates),
                    true_candidate_ids=true_ids,
                    sample_weight=batch.sample_weight,
                    **extra,
                )
            )
        return updates

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
            sampled_loss=self.sampled_loss,
            num_items=self.num_items,
            gbce_calibration=self.gbce_calibration,
            hardness=self.hardness,
            positive_prior=self.positive_prior,
            temperature=self._temperature,
            jit_compile=self.jit_compile,
            diagnostics_stride=self.diagnostics_stride,
            check_finite=self.check_finite,
            cross_replica_negatives=self.cross_replica_negatives,
            num_hard_negatives=self._num_hard_negatives,
            **self._requested,
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


def _layout_score_mask(
    score_mask: Optional[tf.Tensor], columns: Columns, batch: Batch
) -> Optional[tf.Tensor]:
    """The user's `[B, N0 + K]` mask in the columns' layout (`[B, 1 + K]` without in-batch)."""
    if score_mask is None or not columns.positive_first:
        return score_mask
    own = tf.ones([batch.num_queries, 1], tf.bool)
    return tf.concat([own, tf.cast(score_mask, tf.bool)[:, batch.num_given :]], 1)


def _positive_columns(batch: Batch, columns: Columns) -> Optional[tf.Tensor]:
    """`[B]` column of each row's positive: 0 without in-batch negatives, the row's own
    given column among every replica's when gathered, None for TFRS's diagonal."""
    if batch.replica is None or columns.positive_first:
        return columns.positive_columns(batch.num_queries)
    return batch.replica.offset + tf.range(batch.num_queries, dtype=tf.int32)


def _labels(inputs: ops.CorrectionInputs, logits: tf.Tensor) -> tf.Tensor:
    """`[B, N]` one-hot labels of each row's positive column."""
    num_rows, num_columns = tf.shape(logits)[0], tf.shape(logits)[1]
    return tf.one_hot(inputs.positive_column_indices(num_rows), num_columns)


def _accepts(function: Callable, argument: str) -> bool:
    return argument in inspect.signature(function).parameters


def _per_row(source: NegativeSource) -> bool:
    return bool(getattr(source, "per_row", False))
