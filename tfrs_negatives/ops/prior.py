"""Prior correction for a ranker trained on subsampled negatives (pure maths).

He et al. 2014, "Practical lessons from predicting clicks on ads at Facebook", section 6:
a model trained with each negative kept with probability `rate` predicts `p'`; the
probability on the full log is `p = p' / (p' + (1 - p') / rate)`. On logits this is
`logit(p) = logit(p') + log(rate)`.
"""

import tensorflow as tf


def prior_correction(values: tf.Tensor, rate: float, from_logits: bool = False) -> tf.Tensor:
    """Maps subsampled-model outputs back to the full-log scale.

    Args:
      values: `[...]` probabilities `p'` in [0, 1] (or logits with `from_logits=True`).
      rate: the probability with which each negative was kept, in (0, 1].
      from_logits: whether `values` are logits.

    Returns:
      `[...]` corrected probabilities (or logits), computed in float32 and cast back
      to the dtype of `values`.
    """
    values = tf.convert_to_tensor(values)
    x = tf.cast(values, tf.float32)
    log_rate = tf.math.log(tf.constant(rate, tf.float32))
    if from_logits:
        out = x + log_rate
    else:
        # p'/(p' + (1-p')/rate) == rate p' / (rate p' + 1 - p'); denominator >= min(rate, 1) > 0.
        out = rate * x / (rate * x + (1.0 - x))
    return tf.cast(out, values.dtype)
