"""PriorCorrection: a Keras layer undoing negative subsampling on a ranker's output."""

from tfrs_negatives.ops.prior import prior_correction
from tfrs_negatives.ranking.subsampling import _check_rate

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class PriorCorrection(tf.keras.layers.Layer):
    """Maps a subsampled ranker's `p'` to the full-log probability.

    `p = p' / (p' + (1 - p') / rate)`; with `from_logits=True`, `logit(p') + log(rate)`
    (He et al. 2014, "Practical lessons from predicting clicks on ads at Facebook").
    Computed in float32 and cast back (float16-safe).

    Args:
      rate: the keep probability of negatives used in training, in (0, 1].
      from_logits: whether inputs (and outputs) are logits.

    Call:
      inputs: `[...]` probabilities or logits. Returns the same shape and dtype.
    """

    def __init__(self, rate: float, from_logits: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(rate)
        self.from_logits = bool(from_logits)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return prior_correction(inputs, self.rate, self.from_logits)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "from_logits": self.from_logits}
