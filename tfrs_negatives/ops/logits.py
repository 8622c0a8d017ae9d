"""Corrected retrieval logits and the losses on them, fusable into one XLA computation."""

from typing import NamedTuple, Optional

from tfrs_negatives.ops.correction import CorrectionInputs
from tfrs_negatives.ops.hard_weighting import tilted_debiased_softmax
from tfrs_negatives.ops.logq import logq_correction, logq_correction_positive_uncorrected
from tfrs_negatives.ops.losses import bce_loss, bpr_loss, gbce_beta, softmax_cross_entropy
from tfrs_negatives.ops.masking import accidental_hit_mask, apply_mask, own_column_mask

import tensorflow as tf

LOSSES = ("softmax", "bpr", "bce", "gbce")


class LossChoice(NamedTuple):
    """Which retrieval loss, and what it needs.

    Attributes:
      name: `"softmax"` (sampled softmax), `"bpr"`, `"bce"` or `"gbce"` (see
        `tfrs_negatives.ops.losses`).
      num_items: Catalogue size, required by `"gbce"`.
      gbce_calibration: gBCE's `t` in `[0, 1]`.
      hardness: Hardness tilt `beta >= 0` of the softmax's negatives (Robinson et
        al. 2021); `"softmax"` only (`tfrs_negatives.ops.hard_weighting`).
      positive_prior: Debiasing prior `tau+` in `[0, 1)` (Chuang et al. 2020);
        `"softmax"` only.
    """

    name: str = "softmax"
    num_items: Optional[int] = None
    gbce_calibration: float = 0.75
    hardness: float = 0.0
    positive_prior: float = 0.0

    @property
    def reweights_negatives(self) -> bool:
        """Whether the hardness tilt or the debiasing is on (`hard_weighting`)."""
        return bool(self.hardness or self.positive_prior)


def exclusion_mask(scores: tf.Tensor, inputs: CorrectionInputs) -> Optional[tf.Tensor]:
    """`[B, N]` boolean mask of the logits to exclude, or None if nothing is.

    The union of: accidental hits (`inputs.candidate_ids` equal to the row's
    `inputs.positive_ids`, the positive itself excepted), `inputs.column_excluded`
    columns (except where they are the row's positive) and False entries of
    `inputs.score_mask`.

    Args:
      scores: `[B, N]` logits (for the shape).
      inputs: The step's `CorrectionInputs`.
    """
    parts = []
    if inputs.positive_ids is not None and inputs.candidate_ids is not None:
        hits = accidental_hit_mask(
            inputs.positive_ids, inputs.candidate_ids, inputs.positive_columns
        )
        # Columns past `candidate_ids` (per-row extras) are masked by `score_mask`.
        extra = tf.shape(scores)[1] - tf.shape(inputs.candidate_ids)[0]
        parts.append(tf.pad(hits, [[0, 0], [0, extra]]))
    if inputs.column_excluded is not None:
        not_own = tf.logical_not(own_column_mask(scores, inputs.positive_columns))
        parts.append(tf.logical_and(inputs.column_excluded[None, :], not_own))
    if inputs.score_mask is not None:
        parts.append(tf.logical_not(inputs.score_mask))
    if not parts:
        return None
    mask = parts[0]
    for part in parts[1:]:
        mask = tf.logical_or(mask, part)
    return mask


def valid_negatives(scores: tf.Tensor, inputs: CorrectionInputs) -> tf.Tensor:
    """`[B, N]` boolean: entries that are negatives of their row (not its positive,
    not excluded by `exclusion_mask`)."""
    mask = exclusion_mask(scores, inputs)
    own = own_column_mask(scores, inputs.positive_columns)
    return tf.logical_not(own) if mask is None else tf.logical_not(tf.logical_or(own, mask))


def corrected_logits(scores: tf.Tensor, inputs: CorrectionInputs) -> tf.Tensor:
    """Log-Q correction, per-column log-weights of the negatives, then masking.

    `out_ij = s_ij - a log q_j + log w_j` for a negative (`a = inputs.strength`,
    `q_j = inputs.probabilities[j]` clipped below, `w_j` the column's weight),
    `s_ip - a log q_pos_i` for the row's positive (`"logq"`; `"positive_uncorrected"`
    keeps `s_ip` and corrects negatives by `log(q_j / (1 - q_pos_i))`), and the mask
    value where `exclusion_mask` is True.

    Args:
      scores: `[B, N]` float32 logits.
      inputs: The step's `CorrectionInputs`.

    Returns:
      `[B, N]` float32 logits.
    """
    if inputs.probabilities is not None:
        scores = _log_q_corrected(scores, inputs)
    if inputs.column_log_weight is not None:
        weighted = scores + inputs.column_log_weight[None, :]
        own = own_column_mask(scores, inputs.positive_columns)
        scores = tf.where(own, scores, weighted)
    mask = exclusion_mask(scores, inputs)
    return scores if mask is None else apply_mask(scores, mask)


def _log_q_corrected(scores: tf.Tensor, inputs: CorrectionInputs) -> tf.Tensor:
    if inputs.method == "logq":
        probabilities = inputs.probabilities
        if inputs.positive_probabilities is not None:
            # Each row's positive has its own q (e.g. sampled softmax's column 0).
            own = own_column_mask(scores, inputs.positive_columns)
            q_pos = tf.cast(inputs.positive_probabilities, tf.float32)[:, None]
            probabilities = tf.where(own, q_pos, probabilities[None, :])
        return logq_correction(scores, probabilities, inputs.clip_min, inputs.strength)
    if inputs.method == "positive_uncorrected":
        return logq_correction_positive_uncorrected(scores, inputs)
    raise ValueError(f"`method` must be 'logq' or 'positive_uncorrected', got {inputs.method!r}.")


def retrieval_loss(
    scores: tf.Tensor,
    inputs: CorrectionInputs,
    sample_weight: Optional[tf.Tensor] = None,
    choice: Optional[LossChoice] = None,
) -> tf.Tensor:
    """A retrieval loss (summed over rows) on `corrected_logits(scores, inputs)`.

    Args:
      scores: `[B, N]` float32 logits.
      inputs: The step's `CorrectionInputs` (correction, weights, masks, layout).
      sample_weight: Optional `[B]` weights of the rows.
      choice: The loss (`LossChoice`); None: the sampled softmax.

    Returns:
      Scalar float32 loss.
    """
    choice = choice or LossChoice()
    logits = corrected_logits(scores, inputs)
    columns = inputs.positive_columns
    if choice.reweights_negatives and choice.name != "softmax":
        argument = "hardness" if choice.hardness else "positive_prior"
        raise ValueError(f"`{argument}` applies to sampled_loss='softmax', got {choice.name!r}.")
    if choice.name == "softmax" and not choice.reweights_negatives:
        return softmax_cross_entropy(logits, sample_weight, columns)
    valid = valid_negatives(scores, inputs)
    if choice.name == "softmax":
        return tilted_debiased_softmax(
            logits,
            scores,
            valid,
            columns,
            choice.hardness,
            choice.positive_prior,
            sample_weight,
        )
    if choice.name == "bpr":
        return bpr_loss(logits, valid, sample_weight, columns)
    if choice.name == "bce":
        return bce_loss(logits, valid, sample_weight, positive_columns=columns)
    if choice.name == "gbce":
        if choice.num_items is None:
            raise ValueError("`num_items` (the catalogue size) is required by the gBCE loss.")
        k = tf.reduce_sum(tf.cast(valid, tf.float32), axis=1)
        beta = gbce_beta(k, choice.num_items, choice.gbce_calibration)
        return bce_loss(logits, valid, sample_weight, beta, columns)
    raise ValueError(f"`loss` must be one of {LOSSES}, got {choice.name!r}.")
