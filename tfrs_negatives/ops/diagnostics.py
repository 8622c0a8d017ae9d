"""Per-source statistics of a retrieval step's logits: where the softmax mass and the masks fall.

Every column of the `[B, N]` logit matrix belongs to one negative source (the batch's
candidates, a sampled source's draws, a mined source's per-row columns) or to none.
`negative_statistics` reduces the matrix over its rows first (one pass, fusable with
the loss under XLA), then sums the `[N]` column totals by source: `O(B N)` elementwise
work and `O(N S)` for `S` sources, no `[B, N, S]` tensor.
"""

from typing import NamedTuple, Optional

from tfrs_negatives.ops.masking import own_column_mask

import tensorflow as tf


class NegativeStatistics(NamedTuple):
    """Statistics of one step, per source (`[S]`) and of the positives (scalar).

    Attributes:
      mass: `[S]` softmax probability of the source's columns, summed over each row
        (own positive excluded) and averaged over rows.
      gap: `[S]` mean of `s_ii - s_ij` over the source's unmasked entries (0 where
        it has none; see `valid`), on the scale of the `scores` given.
      masked: `[S]` share of the source's entries that are masked (0 where it has
        no entry; see `entries`).
      valid: `[S]` number of unmasked entries.
      entries: `[S]` number of entries (rows times columns, own positives excluded).
      positive_mass: Scalar mean softmax probability of each row's positive.
    """

    mass: tf.Tensor
    gap: tf.Tensor
    masked: tf.Tensor
    valid: tf.Tensor
    entries: tf.Tensor
    positive_mass: tf.Tensor


def negative_statistics(
    scores: tf.Tensor,
    logits: tf.Tensor,
    excluded: Optional[tf.Tensor],
    segments: tf.Tensor,
    num_segments: int,
) -> NegativeStatistics:
    """Softmax mass, score gap and masked share of each source's columns.

    With `p = softmax(logits)` by row and `own = (i == j)`, for source `s` with
    columns `C_s`, over the `B` rows:

    * `mass_s = (1/B) sum_i sum_{j in C_s, j != i} p_ij`;
    * `masked_s = #{(i, j): j in C_s, j != i, excluded_ij} / #{(i, j): j in C_s, j != i}`;
    * `gap_s = mean over unmasked (i, j), j in C_s, j != i, of scores_ii - scores_ij`;
    * `positive_mass = (1/B) sum_i p_ii`.

    Args:
      scores: `[B, N]` float32 scores the gap is measured on (e.g. before the
        correction); row `i`'s positive is column `i`.
      logits: `[B, N]` float32 corrected and masked logits the softmax is taken of.
      excluded: Optional `[B, N]` boolean mask of the masked entries (None: none).
      segments: `[N]` int32 source index of each column in `[0, num_segments)`;
        negative for a column of no source (it then counts for no source).
      num_segments: Number of sources `S` (static).

    Returns:
      A `NegativeStatistics` of float32 tensors.
    """
    logits = tf.cast(logits, tf.float32)
    scores = tf.cast(scores, tf.float32)
    rows = tf.shape(logits)[0]
    num_rows = tf.cast(rows, tf.float32)
    own = own_column_mask(logits)
    p = tf.exp(logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True))
    zeros = tf.zeros_like(p)
    negative_p = tf.reduce_sum(tf.where(own, zeros, p), axis=0)  # [N]
    positive_mass = tf.reduce_sum(tf.where(own, p, zeros)) / num_rows
    # Own entries: one per column j < B.
    own_count = tf.cast(tf.range(tf.shape(logits)[1]) < rows, tf.float32)
    entries = num_rows - own_count  # [N]
    difference = tf.linalg.diag_part(scores)[:, None] - scores
    if excluded is None:
        masked = tf.zeros_like(entries)
        gap = tf.reduce_sum(tf.where(own, zeros, difference), axis=0)
    else:
        dropped = tf.logical_or(own, excluded)
        masked = tf.reduce_sum(tf.cast(tf.logical_and(excluded, ~own), tf.float32), axis=0)
        gap = tf.reduce_sum(tf.where(dropped, zeros, difference), axis=0)
    by_source = tf.one_hot(segments, num_segments, dtype=tf.float32)  # [N, S]; -1: no row
    totals = tf.matmul(tf.stack([negative_p, masked, entries, gap]), by_source)  # [4, S]
    mass, masked, entries, gap = tf.unstack(totals)
    valid = entries - masked
    return NegativeStatistics(
        mass=mass / num_rows,
        gap=tf.math.divide_no_nan(gap, valid),
        masked=tf.math.divide_no_nan(masked, entries),
        valid=valid,
        entries=entries,
        positive_mass=positive_mass,
    )
