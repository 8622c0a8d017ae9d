"""Log-Q (sampling-bias) corrections of retrieval logits.

With negatives drawn with probability `q_j`, the sampled softmax is a biased
estimate of the full softmax; subtracting `log q_j` from each logit removes the bias
(Bengio & Senecal 2008; Yi et al. 2019, "Sampling-bias-corrected neural modeling for
large corpus item recommendations", RecSys). Khrylchenko et al. 2025 ("Correcting
the LogQ Correction", RecSys) show the positive should not be corrected and each
negative should be corrected by `log(q_j / (1 - q_pos))`.
"""

from typing import Optional

from tfrs_negatives.ops.masking import own_column_mask

import tensorflow as tf

CORRECTIONS = ("logq", "positive_uncorrected")


def clipped_log_probability(probabilities: tf.Tensor, clip_min: float = 1e-6) -> tf.Tensor:
    """`log(clip(q, clip_min, 1))` in float32.

    Args:
      probabilities: Tensor of probabilities in `(0, 1]`.
      clip_min: Smallest probability used; keeps `-log q` bounded by `-log clip_min`.

    Returns:
      Tensor of the same shape, float32.
    """
    q = tf.cast(probabilities, tf.float32)
    return tf.math.log(tf.clip_by_value(q, clip_min, 1.0))


def logq_correction(
    logits: tf.Tensor,
    candidate_probabilities: tf.Tensor,
    clip_min: float = 1e-6,
    strength: float = 1.0,
    positive_probabilities: Optional[tf.Tensor] = None,
    positive_columns: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Classic log-Q correction: `s_ij - strength * log(clip(q_j))`.

    When each row's positive has a probability of its own (`positive_probabilities`,
    e.g. sampled softmax with every row's positive in column 0), the positive entry
    is corrected by it instead: `s_ip - strength * log(clip(q_pos_i))`.

    Args:
      logits: `[B, N]` float32 logits, row `i` a query, column `j` a candidate.
      candidate_probabilities: `[N]` sampling probability of each candidate.
      clip_min: Lower clip of `q` (TFRS uses 1e-6).
      strength: Multiplier `a` of `log q`; 1 is the unbiased correction, smaller
        values trade head recall for tail recall.
      positive_probabilities: Optional `[B]` probability of each row's positive.
      positive_columns: Optional `[B]` column of each row's positive (default: `i`;
        see `tfrs_negatives.ops.own_column_mask`).

    Returns:
      `[B, N]` corrected logits.
    """
    log_q = clipped_log_probability(candidate_probabilities, clip_min)
    corrected = logits - strength * log_q[None, :]
    if positive_probabilities is None:
        return corrected
    log_q_pos = clipped_log_probability(positive_probabilities, clip_min)
    own = own_column_mask(logits, positive_columns)
    return tf.where(own, logits - strength * log_q_pos[:, None], corrected)


def logq_correction_positive_uncorrected(
    logits: tf.Tensor,
    candidate_probabilities: tf.Tensor,
    positive_probabilities: tf.Tensor,
    clip_min: float = 1e-6,
    strength: float = 1.0,
    positive_columns: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Khrylchenko et al. (2025) correction: positive as is, negatives `- log(q_j/(1-q_pos))`.

    `out[i, j] = s_ij - strength * (log q_j - log(1 - q_pos_i))` for `j != i`, and
    `out[i, i] = s_ii` (row `i`'s positive is column `i`). `1 - q_pos` is clipped
    below at `clip_min` so a positive with `q = 1` stays finite.

    Args:
      logits: `[B, N]` float32 logits, `N >= B`, positive of row `i` in column `i`.
      candidate_probabilities: `[N]` sampling probability of each candidate.
      positive_probabilities: `[B]` sampling probability of each row's positive.
      clip_min: Lower clip of `q_j` and of `1 - q_pos`.
      strength: Multiplier of the correction term.
      positive_columns: Optional `[B]` column of each row's positive instead of `i`
        (see `tfrs_negatives.ops.own_column_mask`).

    Returns:
      `[B, N]` corrected logits.
    """
    log_q = clipped_log_probability(candidate_probabilities, clip_min)
    q_pos = tf.cast(positive_probabilities, tf.float32)
    log_rest = tf.math.log(tf.clip_by_value(1.0 - q_pos, clip_min, 1.0))
    corrected = logits - strength * (log_q[None, :] - log_rest[:, None])
    return tf.where(own_column_mask(logits, positive_columns), logits, corrected)
