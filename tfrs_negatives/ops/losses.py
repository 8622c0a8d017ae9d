"""Retrieval losses on `[B, N]` logits whose row `i` has its positive in column `i`."""

from typing import Optional

import tensorflow as tf


def softmax_cross_entropy(
    logits: tf.Tensor, sample_weight: Optional[tf.Tensor] = None
) -> tf.Tensor:
    """Sum over rows of `w_i * (logsumexp_j s_ij - s_ii)`.

    Equals TFRS's default retrieval loss (`CategoricalCrossentropy(from_logits=True,
    reduction=SUM)` with identity labels) but uses the sparse kernel: no `[B, N]`
    label matrix is built.

    Args:
      logits: `[B, N]` float32 logits, `N >= B`.
      sample_weight: Optional `[B]` weights.

    Returns:
      Scalar float32 loss.
    """
    labels = tf.range(tf.shape(logits)[0])
    per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if sample_weight is not None:
        per_row = per_row * tf.cast(tf.reshape(sample_weight, [-1]), per_row.dtype)
    return tf.reduce_sum(per_row)
