"""Masking of logits with finite constants, and accidental-hit masks on integer ids."""

from typing import Optional

import numpy as np
import tensorflow as tf


def mask_value(dtype: tf.DType = tf.float32) -> float:
    """The value a masked logit is set to: finite and safe in `dtype`.

    Half the most negative finite value of `float16`/`bfloat16` (e.g. `-32752` in
    `float16`), and `-1e9` in `float32`/`float64` (as Keras' attention masking).
    Masked logits are *set* to this value (`tf.where`), never added to, so masking
    twice cannot overflow to `-inf`; subtracting the row maximum (at most ~6e4 in
    half precision) stays finite, and `exp` of the difference underflows to exactly 0.

    Args:
      dtype: Floating dtype of the logits.

    Returns:
      A Python float.
    """
    dtype = tf.as_dtype(dtype)
    if not dtype.is_floating:
        raise TypeError(f"`dtype` must be a floating dtype, got {dtype.name}.")
    if dtype in (tf.float16, tf.bfloat16):
        return float(0.5 * np.finfo(np.float16).min) if dtype == tf.float16 else -1e30
    return -1e9


def apply_mask(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Sets `logits` to `mask_value(logits.dtype)` where `mask` is True.

    Args:
      logits: `[B, N]` floating tensor.
      mask: `[B, N]` boolean tensor (broadcastable).

    Returns:
      `[B, N]` tensor, same dtype as `logits`.
    """
    return tf.where(mask, tf.constant(mask_value(logits.dtype), logits.dtype), logits)


def accidental_hit_mask(
    query_positive_ids: tf.Tensor,
    candidate_ids: tf.Tensor,
    positive_columns: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Marks candidates that equal the row's positive, other than the positive itself.

    Row `i`'s positive sits in column `i` (the TFRS convention: candidate `i` is the
    positive of query `i`; further columns are extra negatives).
    `mask[i, j] = (candidate_ids[j] == query_positive_ids[i]) and j != i`.

    Args:
      query_positive_ids: `[B]` `int64` ids of each row's positive.
      candidate_ids: `[N]` `int64` ids of the candidates (columns), `N >= B`.
      positive_columns: Optional `[B]` column of each row's positive instead of `i`
        (see `own_column_mask`).

    Returns:
      `[B, N]` boolean mask.
    """
    hits = tf.equal(query_positive_ids[:, None], candidate_ids[None, :])
    return tf.logical_and(hits, tf.logical_not(own_column_mask(hits, positive_columns)))


def own_column_mask(logits: tf.Tensor, positive_columns: Optional[tf.Tensor] = None) -> tf.Tensor:
    """`[B, N]` boolean, True at each row's own positive column: `(i, i)` by default.

    Built by comparing ranges rather than with `tf.linalg.set_diag`, whose gradient
    XLA cannot compile when the batch size is dynamic.

    Args:
      logits: `[B, N]` logits (for the shape).
      positive_columns: Optional `[B]` int32 column of each row's positive, for rows
        taken out of a batch (row `k` is batch row `positive_columns[k]`); None: the
        diagonal.
    """
    cols = tf.range(tf.shape(logits)[1])[None, :]
    if positive_columns is not None:
        return tf.equal(tf.cast(positive_columns, tf.int32)[:, None], cols)
    rows = tf.range(tf.shape(logits)[0])[:, None]
    return tf.equal(rows, cols)
