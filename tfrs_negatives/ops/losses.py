"""Retrieval losses on `[B, N]` logits whose row `i` has its positive in column `i`.

Every loss takes the (corrected, masked) logits and sums per-row losses weighted by
`sample_weight`, as TFRS' default loss does (`reduction=SUM`). The pairwise and
pointwise losses also take `valid_negatives`, the `[B, N]` boolean mask of the
entries that are negatives of their row (not the positive, not masked).
"""

from typing import Optional

import tensorflow as tf


def positive_logits(logits: tf.Tensor, positive_columns: Optional[tf.Tensor] = None) -> tf.Tensor:
    """`[B]` each row's positive logit: column `i` of row `i`, or `positive_columns[i]`."""
    if positive_columns is None:
        return tf.linalg.diag_part(logits)
    return tf.gather(logits, tf.cast(positive_columns, tf.int32), axis=1, batch_dims=1)


def _weighted_sum(per_row: tf.Tensor, sample_weight: Optional[tf.Tensor]) -> tf.Tensor:
    if sample_weight is not None:
        per_row = per_row * tf.cast(tf.reshape(sample_weight, [-1]), per_row.dtype)
    return tf.reduce_sum(per_row)


def softmax_cross_entropy(
    logits: tf.Tensor,
    sample_weight: Optional[tf.Tensor] = None,
    positive_columns: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Sum over rows of `w_i * (logsumexp_j s_ij - s_ii)`.

    Equals TFRS's default retrieval loss (`CategoricalCrossentropy(from_logits=True,
    reduction=SUM)` with identity labels) but uses the sparse kernel: no `[B, N]`
    label matrix is built.

    Args:
      logits: `[B, N]` float32 logits, `N >= B`.
      sample_weight: Optional `[B]` weights.
      positive_columns: Optional `[B]` column of each row's positive (default `i`).

    Returns:
      Scalar float32 loss.
    """
    labels = tf.range(tf.shape(logits)[0])
    if positive_columns is not None:
        labels = tf.cast(positive_columns, tf.int32)
    # A replica's empty share of a small last batch under tf.distribute (per-replica
    # negatives) is `[0, 0]`, which the kernel rejects (no class): one padding
    # column then; with columns nothing is padded and the input passes through.
    no_columns = tf.cast(tf.equal(tf.shape(logits)[1], 0), tf.int32)
    logits = tf.pad(logits, [[0, 0], [0, no_columns]])
    per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return _weighted_sum(per_row, sample_weight)


def bpr_loss(
    logits: tf.Tensor,
    valid_negatives: tf.Tensor,
    sample_weight: Optional[tf.Tensor] = None,
    positive_columns: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Bayesian personalised ranking (Rendle et al. 2009): the positive above each negative.

    Per row: `mean_{j valid} -log sigmoid(s_ii - s_ij)` (0 for a row with no valid
    negative).

    Args:
      logits: `[B, N]` float32 logits.
      valid_negatives: `[B, N]` boolean mask of each row's negatives.
      sample_weight: Optional `[B]` weights.
      positive_columns: Optional `[B]` column of each row's positive (default `i`).

    Returns:
      Scalar float32 loss.
    """
    positive = positive_logits(logits, positive_columns)
    valid = tf.cast(valid_negatives, logits.dtype)
    terms = tf.nn.softplus(logits - positive[:, None]) * valid
    per_row = tf.reduce_sum(terms, axis=1) / tf.maximum(tf.reduce_sum(valid, axis=1), 1.0)
    return _weighted_sum(per_row, sample_weight)


def bce_loss(
    logits: tf.Tensor,
    valid_negatives: tf.Tensor,
    sample_weight: Optional[tf.Tensor] = None,
    positive_weight: Optional[tf.Tensor] = None,
    positive_columns: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Binary cross-entropy: positive labelled 1, each valid negative 0.

    Per row: `-beta_i log sigmoid(s_ii) - sum_{j valid} log(1 - sigmoid(s_ij))`
    (`beta = 1` unless `positive_weight` is given: that is gBCE).

    Args:
      logits: `[B, N]` float32 logits.
      valid_negatives: `[B, N]` boolean mask of each row's negatives.
      sample_weight: Optional `[B]` weights.
      positive_weight: Optional `[B]` exponents `beta` of the positive's sigmoid.
      positive_columns: Optional `[B]` column of each row's positive (default `i`).

    Returns:
      Scalar float32 loss.
    """
    positive = positive_logits(logits, positive_columns)
    negatives = tf.reduce_sum(tf.nn.softplus(logits) * tf.cast(valid_negatives, logits.dtype), 1)
    positive_term = tf.nn.softplus(-positive)
    if positive_weight is not None:
        positive_term = positive_term * positive_weight
    return _weighted_sum(positive_term + negatives, sample_weight)


def gbce_beta(num_negatives: tf.Tensor, num_items: int, calibration: float) -> tf.Tensor:
    """gSASRec's exponent `beta = alpha (t (1 - 1/alpha) + 1/alpha)`, `alpha = k / (|I| - 1)`.

    Petrov & Macdonald 2023 ("gSASRec: Reducing Overconfidence in Sequential
    Recommendation Trained with Negative Sampling", RecSys): with `k` negatives
    sampled from `|I|` items, `t = 0` gives BCE (`beta = 1`), `t = 1` full calibration
    (`beta = alpha`).

    Args:
      num_negatives: `[B]` number of negatives `k` of each row.
      num_items: Catalogue size `|I|` (> 1).
      calibration: `t` in `[0, 1]`.

    Returns:
      `[B]` float32 `beta`.
    """
    alpha = tf.cast(num_negatives, tf.float32) / float(num_items - 1)
    alpha = tf.clip_by_value(alpha, 0.0, 1.0)
    return 1.0 - calibration * (1.0 - alpha)  # the same expression, without 1 / alpha
