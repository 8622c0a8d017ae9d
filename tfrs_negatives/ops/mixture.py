"""Sampling probability of a candidate under a mixture of negative sources.

A step's candidates come from several sources; source `s` makes `M_s` draws, each
candidate `j` with probability `p_s(j)`. Two corrections are consistent:

* keeping every draw as its own softmax term (duplicates included), the expected
  share of `j` among the `M = sum_s M_s` draws,
  `Q(j) = sum_s M_s p_s(j) / M` (for B in-batch and K uniform draws,
  `(B p_batch(j) + K / N) / (B + K)`); the sampled denominator
  `sum_draws exp(s_j) / Q(j)` is then unbiased for `M` times the full one
  (Hansen-Hurwitz);
* keeping each distinct candidate once (duplicates masked), the probability that
  `j` is drawn at all, `pi(j) = 1 - prod_s P(source s misses j)`, with
  `P(miss) = (1 - p_s(j))^{M_s}` for draws with replacement; then
  `sum_distinct exp(s_j) / pi(j)` is unbiased for the full denominator
  (Horvitz-Thompson).
"""

import tensorflow as tf


def expected_share(draw_probabilities: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
    """`Q(j) = sum_s M_s p_s(j) / sum_s M_s`.

    Args:
      draw_probabilities: `[S, n]` probability that one draw of source `s` is each
        of `n` candidates.
      draws: `[S]` number of draws of each source (positive total).

    Returns:
      `[n]` float32 expected share of each candidate among all draws.
    """
    draws = tf.cast(draws, tf.float32)
    p = tf.cast(draw_probabilities, tf.float32)
    # No draws at all (every source switched off) gives 0, not NaN.
    return tf.reduce_sum(draws[:, None] * p, axis=0) / tf.maximum(tf.reduce_sum(draws), 1e-12)


def inclusion_probability(log_miss_probabilities: tf.Tensor) -> tf.Tensor:
    """`pi(j) = 1 - exp(sum_s log P(source s misses j))`, computed with `expm1`.

    Args:
      log_miss_probabilities: `[S, n]` log-probability that all draws of source `s`
        miss each candidate (`-inf` for a candidate the source always includes).

    Returns:
      `[n]` float32 probability that each candidate is drawn by some source.
    """
    total = tf.reduce_sum(tf.cast(log_miss_probabilities, tf.float32), axis=0)
    return -tf.math.expm1(total)


def log_miss_with_replacement(draw_probabilities: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
    """`M log(1 - p(j))`: the log-probability that `M` draws with replacement all miss `j`.

    Args:
      draw_probabilities: `[n]` per-draw probabilities.
      draws: Scalar number of draws `M` (0 gives 0, also where `p = 1`).

    Returns:
      `[n]` float32.
    """
    draws = tf.cast(draws, tf.float32)
    per_draw = tf.math.log1p(-tf.minimum(tf.cast(draw_probabilities, tf.float32), 1.0))
    return tf.where(draws > 0, draws * per_draw, tf.zeros_like(per_draw))
