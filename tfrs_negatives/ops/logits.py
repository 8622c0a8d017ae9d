"""Corrected retrieval logits and the losses on them, fusable into one XLA computation."""

from typing import Optional

from tfrs_negatives.ops.logq import logq_correction, logq_correction_positive_uncorrected
from tfrs_negatives.ops.losses import bce_loss, bpr_loss, gbce_beta, softmax_cross_entropy
from tfrs_negatives.ops.masking import accidental_hit_mask, apply_mask, own_column_mask

import tensorflow as tf

LOSSES = ("softmax", "bpr", "bce", "gbce")


def exclusion_mask(
    scores: tf.Tensor,
    positive_ids: Optional[tf.Tensor] = None,
    candidate_ids: Optional[tf.Tensor] = None,
    column_excluded: Optional[tf.Tensor] = None,
    score_mask: Optional[tf.Tensor] = None,
    positive_columns: Optional[tf.Tensor] = None,
) -> Optional[tf.Tensor]:
    """`[B, N]` boolean mask of the logits to exclude, or None if nothing is.

    Args:
      scores: `[B, N]` logits (for the shape).
      positive_ids: Optional `[B]` int64 ids of the positives; with `candidate_ids`
        excludes accidental hits.
      candidate_ids: Optional `[N']` int64 ids of the first `N' <= N` columns
        (the shared ones; later per-row columns are masked through `score_mask`).
      column_excluded: Optional `[N]` boolean: column `j` is excluded for every row
        except row `j` (whose positive it is): duplicates, inactive draws,
        switched-off sources.
      score_mask: Optional `[B, N]` boolean; False entries are excluded.
      positive_columns: Optional `[B]` column of each row's positive, for rows
        taken out of a batch (row `k` is batch row `positive_columns[k]`, and
        `positive_ids`/`score_mask` are that row's); None: row `i`'s is column `i`.
    """
    parts = []
    if positive_ids is not None:
        hits = accidental_hit_mask(positive_ids, candidate_ids, positive_columns)
        # Columns past `candidate_ids` (per-row extras) are masked by `score_mask`.
        extra = tf.shape(scores)[1] - tf.shape(candidate_ids)[0]
        parts.append(tf.pad(hits, [[0, 0], [0, extra]]))
    if column_excluded is not None:
        not_own = tf.logical_not(own_column_mask(scores, positive_columns))
        parts.append(tf.logical_and(column_excluded[None, :], not_own))
    if score_mask is not None:
        parts.append(tf.logical_not(score_mask))
    if not parts:
        return None
    mask = parts[0]
    for part in parts[1:]:
        mask = tf.logical_or(mask, part)
    return mask


def corrected_logits(
    scores: tf.Tensor,
    probabilities: Optional[tf.Tensor] = None,
    correction: str = "logq",
    clip_min: float = 1e-6,
    strength: float = 1.0,
    positive_ids: Optional[tf.Tensor] = None,
    candidate_ids: Optional[tf.Tensor] = None,
    column_excluded: Optional[tf.Tensor] = None,
    column_log_weight: Optional[tf.Tensor] = None,
    score_mask: Optional[tf.Tensor] = None,
    positive_columns: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Log-Q correction, per-column log-weights of the negatives, then masking.

    Args:
      scores: `[B, N]` float32 logits; row `i`'s positive is column `i`.
      probabilities: Optional `[N]` sampling probabilities of the candidates.
      correction: `"logq"` or `"positive_uncorrected"` (see `tfrs_negatives.ops.logq`).
      clip_min: Lower clip of probabilities.
      strength: Multiplier of the correction.
      positive_ids, candidate_ids, column_excluded, score_mask: See `exclusion_mask`.
      column_log_weight: Optional `[N]` log-weight added to column `j` as a negative
        (not to a row's own positive): weights a source's terms in the denominator.
      positive_columns: Optional `[B]` column of each row's positive, for rows taken
        out of a batch (see `exclusion_mask`); None: row `i`'s is column `i`.

    Returns:
      `[B, N]` float32 logits.
    """
    if probabilities is not None:
        if correction == "logq":
            scores = logq_correction(scores, probabilities, clip_min, strength)
        elif correction == "positive_uncorrected":
            positive_q = (
                probabilities[: tf.shape(scores)[0]]
                if positive_columns is None
                else tf.gather(probabilities, positive_columns)
            )
            scores = logq_correction_positive_uncorrected(
                scores, probabilities, positive_q, clip_min, strength, positive_columns
            )
        else:
            raise ValueError(
                f"`correction` must be 'logq' or 'positive_uncorrected', got {correction!r}."
            )
    if column_log_weight is not None:
        weighted = scores + column_log_weight[None, :]
        scores = tf.where(own_column_mask(scores, positive_columns), scores, weighted)
    mask = exclusion_mask(
        scores, positive_ids, candidate_ids, column_excluded, score_mask, positive_columns
    )
    return scores if mask is None else apply_mask(scores, mask)


def retrieval_loss(
    scores: tf.Tensor,
    sample_weight: Optional[tf.Tensor] = None,
    loss: str = "softmax",
    num_items: Optional[int] = None,
    gbce_calibration: float = 0.75,
    probabilities: Optional[tf.Tensor] = None,
    correction: str = "logq",
    clip_min: float = 1e-6,
    strength: float = 1.0,
    positive_ids: Optional[tf.Tensor] = None,
    candidate_ids: Optional[tf.Tensor] = None,
    column_excluded: Optional[tf.Tensor] = None,
    column_log_weight: Optional[tf.Tensor] = None,
    score_mask: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """A retrieval loss (summed over rows) on `corrected_logits(...)`.

    Args:
      scores: `[B, N]` float32 logits; row `i`'s positive is column `i`.
      sample_weight: Optional `[B]` weights of the rows.
      loss: `"softmax"` (sampled softmax), `"bpr"`, `"bce"` or `"gbce"` (see
        `tfrs_negatives.ops.losses`).
      num_items: Catalogue size, required by `"gbce"`.
      gbce_calibration: gBCE's `t` in `[0, 1]`.
      probabilities, correction, clip_min, strength, positive_ids, candidate_ids,
        column_excluded, column_log_weight, score_mask: As in `corrected_logits`.

    Returns:
      Scalar float32 loss.
    """
    logits = corrected_logits(
        scores,
        probabilities,
        correction,
        clip_min,
        strength,
        positive_ids,
        candidate_ids,
        column_excluded,
        column_log_weight,
        score_mask,
    )
    if loss == "softmax":
        return softmax_cross_entropy(logits, sample_weight)
    mask = exclusion_mask(scores, positive_ids, candidate_ids, column_excluded, score_mask)
    own = own_column_mask(scores)
    valid = tf.logical_not(own) if mask is None else tf.logical_not(tf.logical_or(own, mask))
    if loss == "bpr":
        return bpr_loss(logits, valid, sample_weight)
    if loss == "bce":
        return bce_loss(logits, valid, sample_weight)
    if loss == "gbce":
        if num_items is None:
            raise ValueError("`num_items` (the catalogue size) is required by the gBCE loss.")
        k = tf.reduce_sum(tf.cast(valid, tf.float32), axis=1)
        return bce_loss(logits, valid, sample_weight, gbce_beta(k, num_items, gbce_calibration))
    raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")


@tf.function(jit_compile=True)
def _loss_and_gradient(scores: tf.Tensor, *args, **kwargs):
    """`retrieval_loss` and its gradient with respect to `scores`, in one XLA computation."""
    with tf.GradientTape() as tape:
        tape.watch(scores)
        loss = retrieval_loss(scores, *args, **kwargs)
    return loss, tape.gradient(loss, scores)


def fused_retrieval_loss(scores: tf.Tensor, *args, **kwargs) -> tf.Tensor:
    """`retrieval_loss` compiled with XLA, forward and backward in one computation.

    Correction, masks and loss fuse into a few passes over `[B, N]` instead of one
    pass per operation (measured in `benchmarks/logq_step_time.py`). The gradient
    with respect to `scores` is computed with the loss, inside the compiled
    function, and handed back through `tf.custom_gradient`: compiling the backward
    pass separately fails for dynamic batch sizes (XLA cannot take the forward's
    shapes as inputs). Only `scores` receives a gradient; the other arguments are
    constants of the step (probabilities, masks, weights).

    Args:
      scores: `[B, N]` float32 logits.
      *args, **kwargs: As `retrieval_loss`.

    Returns:
      Scalar float32 loss.
    """

    @tf.custom_gradient
    def run(logits: tf.Tensor):
        loss, gradient = _loss_and_gradient(logits, *args, **kwargs)
        return loss, lambda upstream: upstream * gradient

    return run(scores)
