"""Corrected retrieval logits, and their softmax loss fused into one XLA computation."""

from typing import Optional

from tfrs_negatives.ops.logq import logq_correction, logq_correction_positive_uncorrected
from tfrs_negatives.ops.losses import softmax_cross_entropy
from tfrs_negatives.ops.masking import accidental_hit_mask, apply_mask

import tensorflow as tf


def corrected_logits(
    scores: tf.Tensor,
    probabilities: Optional[tf.Tensor] = None,
    correction: str = "logq",
    clip_min: float = 1e-6,
    strength: float = 1.0,
    positive_ids: Optional[tf.Tensor] = None,
    candidate_ids: Optional[tf.Tensor] = None,
    score_mask: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Applies log-Q correction, accidental-hit masking and a score mask, in that order.

    Args:
      scores: `[B, N]` float32 logits; row `i`'s positive is column `i`.
      probabilities: Optional `[N]` sampling probabilities of the candidates.
      correction: `"logq"` or `"positive_uncorrected"` (see `tfrs_negatives.ops.logq`).
      clip_min: Lower clip of probabilities.
      strength: Multiplier of the correction.
      positive_ids: Optional `[B]` int64 ids of the positives; with `candidate_ids`
        (`[N]` int64) masks accidental hits.
      candidate_ids: Optional `[N]` int64 candidate ids.
      score_mask: Optional `[B, N]` boolean; False entries are masked.

    Returns:
      `[B, N]` float32 logits.
    """
    if probabilities is not None:
        if correction == "logq":
            scores = logq_correction(scores, probabilities, clip_min, strength)
        elif correction == "positive_uncorrected":
            num_rows = tf.shape(scores)[0]
            scores = logq_correction_positive_uncorrected(
                scores, probabilities, probabilities[:num_rows], clip_min, strength
            )
        else:
            raise ValueError(
                f"`correction` must be 'logq' or 'positive_uncorrected', got {correction!r}."
            )
    if positive_ids is not None:
        scores = apply_mask(scores, accidental_hit_mask(positive_ids, candidate_ids))
    if score_mask is not None:
        scores = apply_mask(scores, tf.logical_not(score_mask))
    return scores


def corrected_softmax_loss(
    scores: tf.Tensor,
    sample_weight: Optional[tf.Tensor] = None,
    probabilities: Optional[tf.Tensor] = None,
    correction: str = "logq",
    clip_min: float = 1e-6,
    strength: float = 1.0,
    positive_ids: Optional[tf.Tensor] = None,
    candidate_ids: Optional[tf.Tensor] = None,
    score_mask: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Softmax cross-entropy of `corrected_logits(...)`, summed over rows.

    Args:
      scores: `[B, N]` float32 logits; row `i`'s positive is column `i`.
      sample_weight: Optional `[B]` weights of the rows.
      probabilities, correction, clip_min, strength, positive_ids, candidate_ids,
        score_mask: As in `corrected_logits`.

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
        score_mask,
    )
    return softmax_cross_entropy(logits, sample_weight)


#: The same computation compiled with XLA: the correction, the masks and the
#: softmax fuse into a few passes over `[B, N]` instead of one pass per operation
#: (measured in `benchmarks/logq_step_time.py`).
fused_corrected_softmax_loss = tf.function(corrected_softmax_loss, jit_compile=True)
