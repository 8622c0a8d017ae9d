"""The mixture probability of a step whose sources include per-row samplers (`Cache`, `Dynamic`).

A per-row sampler draws `k` negatives for row `i` from a distribution `p_i` of its
own. Every column of row `i` (the shared ones, the positive, the per-row draws) is
then a candidate the whole mixture could have drawn, and is corrected by the
mixture's probability at `(i, j)` (the balance heuristic of multiple importance
sampling, Veach & Guibas 1995), on the scale of the shared columns' `Q(j)`:

* `duplicates="keep"`: the expected share `Q_i(j) = Q(j) + sum_s k_s p_si(j) / D`,
  `D` the step's shared draws (the shared `Q(j)` is a share of `D`);
* `duplicates="mask"`: the inclusion probability
  `pi_i(j) = 1 - (1 - pi(j)) prod_s (1 - p_si(j))^k_s`; later copies of an id in a
  sampler's block of a row are masked.

Chosen (not sampled) per-row draws (`Mined`, `FromFeatures`, `Dynamic` "top") stay
certain terms with the unit of a mined negative: 1 ("mask") or `1 / D` ("keep").
All of this is folded into the scores as a shift of the log-probability the loss
corrects them by, so the loss and its fused XLA path are unchanged.
"""

from typing import Optional, Sequence, Tuple

from tfrs_negatives.tasks.columns import RowColumns, later_copies

import tensorflow as tf


def samplers_part(
    samplers: Sequence[tuple],
    ids: tf.Tensor,
    raw_scores: tf.Tensor,
    mask_duplicates: bool,
    shared_draws: tf.Tensor,
) -> tf.Tensor:
    """`[B, n]` the per-row samplers' part of the mixture at `ids` (`[B, n]` int64).

    "mask": `sum_s k_s log(1 - p_si(j))` (the log-probability that they all miss);
    "keep": `sum_s k_s p_si(j) / D`.
    """
    total = tf.zeros(tf.shape(raw_scores), tf.float32)
    for source, probability_of in samplers:
        k = tf.cast(source.active_draws(), tf.float32)
        p = tf.stop_gradient(tf.cast(probability_of(ids, raw_scores), tf.float32))
        if mask_duplicates:
            total += k * tf.math.log1p(-tf.minimum(p, 1.0 - 1e-7))
        else:
            total += k * p / shared_draws
    return total


def combined(shared: Optional[tf.Tensor], part: tf.Tensor, mask_duplicates: bool) -> tf.Tensor:
    """The mixture's `[B, n]` probability from the shared part (`[B, n]`, `[n]` or None)."""
    if shared is None:
        shared = tf.zeros([], tf.float32)
    if mask_duplicates:
        return 1.0 - (1.0 - shared) * tf.exp(part)
    return shared + part


def row_column_log_q(
    rows: RowColumns,
    shared_row_q: Optional[tf.Tensor],
    mask_duplicates: bool,
    shared_draws: tf.Tensor,
    clip_min: float,
) -> Tuple[tf.Tensor, tf.Tensor]:
    """`(log_q [B, M], duplicate [B, M] bool)` of the per-row columns.

    Args:
      rows: The per-row columns (with `probabilities` and `samplers`).
      shared_row_q: `[B, M]` the shared sources' mixture probability at the rows'
        ids, or None when the shared columns are not corrected.
      mask_duplicates: The task's duplicate mode is "mask".
      shared_draws: Scalar float32 `D`.
      clip_min: Lower clip of probabilities before the log.
    """
    unit = tf.ones([]) if mask_duplicates else 1.0 / shared_draws
    part = samplers_part(rows.samplers, rows.ids, rows.scores, mask_duplicates, shared_draws)
    mixture = combined(shared_row_q, part, mask_duplicates)
    log_q, duplicate, start = [], [], 0
    sampling = {id(source) for source, _ in rows.samplers}
    for source, _, count in rows.blocks:
        block = slice(start, start + count)
        start += count
        shape = tf.shape(rows.ids[:, block])
        if id(source) not in sampling:
            log_q.append(tf.fill(shape, tf.math.log(unit)))
            duplicate.append(tf.zeros(shape, tf.bool))
            continue
        q = mixture[:, block]
        log_q.append(tf.math.log(tf.clip_by_value(q, clip_min, 1.0)))
        if mask_duplicates:
            duplicate.append(later_copies(rows.ids[:, block]))
        else:
            duplicate.append(tf.zeros(shape, tf.bool))
    return tf.concat(log_q, 1), tf.concat(duplicate, 1)


def shared_column_shift(  # noqa: PLR0913 (the columns, then the mixture's terms)
    rows: RowColumns,
    column_ids: tf.Tensor,
    raw_scores: tf.Tensor,
    shared_q: tf.Tensor,
    mask_duplicates: bool,
    shared_draws: tf.Tensor,
    clip_min: float,
    positive_first: bool,
) -> tf.Tensor:
    """`[B, N]` `log q_i(j) - log q(j)`: how much the per-row samplers raise each shared
    column's mixture probability (0 at the positive column of the sampled-softmax layout).

    Args:
      rows: The per-row columns (their `samplers`).
      column_ids: `[N]` int64 ids of the shared columns.
      raw_scores: `[B, N]` raw scores of the shared columns.
      shared_q: `[N]` the shared mixture's probability of each column.
      mask_duplicates, shared_draws, clip_min: As `row_column_log_q`.
      positive_first: Column 0 is each row's own positive (left as it is).
    """
    b = tf.shape(raw_scores)[0]
    ids = tf.broadcast_to(column_ids[None, :], [b, tf.shape(column_ids)[0]])
    part = samplers_part(rows.samplers, ids, raw_scores, mask_duplicates, shared_draws)
    shared = tf.clip_by_value(tf.cast(shared_q, tf.float32), clip_min, 1.0)
    mixture = tf.clip_by_value(combined(shared[None, :], part, mask_duplicates), clip_min, 1.0)
    shift = tf.math.log(mixture) - tf.math.log(shared)[None, :]
    if positive_first:
        shift = tf.concat([tf.zeros([b, 1]), shift[:, 1:]], 1)
    return shift
