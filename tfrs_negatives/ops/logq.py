"""Log-Q (sampling-bias) corrections of retrieval logits.

With negatives drawn with probability `q_j`, the sampled softmax is a biased
estimate of the full softmax; subtracting `log q_j` from each logit removes the bias
(Bengio & Senecal 2008; Yi et al. 2019, "Sampling-bias-corrected neural modeling for
large corpus item recommendations", RecSys). Khrylchenko et al. 2025 ("Correcting
the LogQ Correction", RecSys) show the positive should not be corrected and each
negative should be corrected by `log(q_j / (1 - q_pos))`.
"""

from typing import TYPE_CHECKING

from tfrs_negatives.ops.masking import own_column_mask

import tensorflow as tf

if TYPE_CHECKING:
    from tfrs_negatives.ops.correction import CorrectionInputs

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
) -> tf.Tensor:
    """Classic log-Q correction: `s_ij - strength * log(clip(q_j))`.

    Args:
      logits: `[B, N]` float32 logits, row `i` a query, column `j` a candidate.
      candidate_probabilities: `[N]` sampling probability of each candidate, or
        `[B, N]` one per entry (e.g. each row's own positive in column 0).
      clip_min: Lower clip of `q` (TFRS uses 1e-6).
      strength: Multiplier `a` of `log q`; 1 is the unbiased correction, smaller
        values trade head recall for tail recall.

    Returns:
      `[B, N]` corrected logits.
    """
    log_q = clipped_log_probability(candidate_probabilities, clip_min)
    if log_q.shape.rank == 1:
        log_q = log_q[None, :]
    return logits - strength * log_q


def logq_correction_positive_uncorrected(
    logits: tf.Tensor, inputs: "CorrectionInputs"
) -> tf.Tensor:
    """Khrylchenko et al. (2025) correction: positive as is, negatives `- log(q_j/(1-q_pos))`.

    `out[i, j] = s_ij - a (log q_j - log(1 - q_pos_i))` for every `j` but row `i`'s
    positive column, where `out = s` (`a = inputs.strength`, `q = inputs.probabilities`,
    `q_pos = inputs.positive_probability(B)`, the positive's column from
    `inputs.positive_columns`, the diagonal by default). `1 - q_pos` is clipped below
    at `inputs.clip_min` so a positive with `q = 1` stays finite.

    Args:
      logits: `[B, N]` float32 logits.
      inputs: `CorrectionInputs` with `probabilities` (`[N]`).

    Returns:
      `[B, N]` corrected logits.
    """
    log_q = clipped_log_probability(inputs.probabilities, inputs.clip_min)
    q_pos = inputs.positive_probability(tf.shape(logits)[0])
    log_rest = tf.math.log(tf.clip_by_value(1.0 - q_pos, inputs.clip_min, 1.0))
    corrected = logits - inputs.strength * (log_q[None, :] - log_rest[:, None])
    return tf.where(own_column_mask(logits, inputs.positive_columns), logits, corrected)
