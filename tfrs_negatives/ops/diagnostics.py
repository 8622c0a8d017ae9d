"""Per-source statistics of a retrieval step's logits: where the softmax mass and the masks fall.

Every column of the `[B, N]` logit matrix belongs to one negative source (the batch's
candidates, a sampled source's draws, a mined source's per-row columns) or to none.
`negative_statistics` reduces the matrix over its rows first, then sums the `[N]`
column totals by source: `O(B N)` elementwise work and `O(N S)` for `S` sources.

A training step makes only a few, fused passes over `[B, N]` (the scores, the loss and
its gradient, the two backward matmuls); measuring every row costs about as much again
(measured: 1.8 times the step, `benchmarks/diagnostics_overhead.py`). So
`retrieval_statistics` measures every `row_stride`-th row (rows `0, s, 2s, ...`), about
`1 / s` of that, whatever the batch size. It rebuilds those rows' corrected logits
itself (`rows_logits`) and leaves the loss's computation untouched.
"""

from typing import NamedTuple, Optional, Tuple

from tfrs_negatives.ops.correction import CorrectionInputs
from tfrs_negatives.ops.logits import corrected_logits, exclusion_mask
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
      positive_mass: Scalar mean softmax probability of each row's positive (NaN
        without rows).
      rows: Scalar number of rows measured (0: a replica's empty share of a small
        last batch under `tf.distribute`).
    """

    mass: tf.Tensor
    gap: tf.Tensor
    masked: tf.Tensor
    valid: tf.Tensor
    entries: tf.Tensor
    positive_mass: tf.Tensor
    rows: tf.Tensor


class StatisticsRequest(NamedTuple):
    """What to measure: the source of every column, and which rows.

    Attributes:
      segments: `[N]` int32 index of each column's source in `[0, num_segments)`;
        negative for a column of no source (it then counts for no source).
      num_segments: Number of sources `S` (static).
      row_stride: Measure rows `0, s, 2s, ...` (`s = row_stride`); 1: every row.
    """

    segments: tf.Tensor
    num_segments: int
    row_stride: int = 1


def negative_statistics(
    scores: tf.Tensor,
    logits: tf.Tensor,
    excluded: Optional[tf.Tensor],
    request: StatisticsRequest,
    own: Optional[tf.Tensor] = None,
) -> NegativeStatistics:
    """Softmax mass, score gap and masked share of each source's columns.

    With `p = softmax(logits)` by row and `own = (i == j)` (row `i`'s positive
    entry), for source `s` with columns `C_s`, over the `B` rows:

    * `mass_s = (1/B) sum_i sum_{j in C_s, not own_ij} p_ij`;
    * `masked_s = #{(i, j): j in C_s, not own_ij, excluded_ij} / #{(i, j): j in C_s,
      not own_ij}`;
    * `gap_s = mean over unmasked (i, j), j in C_s, not own_ij, of
      s_i(positive) - s_ij`;
    * `positive_mass = (1/B) sum_i p_i(positive)`.

    Args:
      scores: `[B, N]` float32 scores the gap is measured on (e.g. before the
        correction).
      logits: `[B, N]` float32 corrected and masked logits the softmax is taken of.
      excluded: Optional `[B, N]` boolean mask of the masked entries (None: none).
      request: The columns' sources (`StatisticsRequest`; its `row_stride` is not
        used here: every row given is measured).
      own: Optional `[B, N]` boolean, True at each row's positive (one per row);
        default: the diagonal (row `i`'s positive in column `i`).

    Returns:
      A `NegativeStatistics` of float32 tensors.
    """
    logits = tf.cast(logits, tf.float32)
    scores = tf.cast(scores, tf.float32)
    num_rows = tf.cast(tf.shape(logits)[0], tf.float32)
    own = own_column_mask(logits) if own is None else own
    p = tf.exp(logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True))
    zeros = tf.zeros_like(p)
    negative_p = tf.reduce_sum(tf.where(own, zeros, p), axis=0)  # [N]
    positive_mass = tf.reduce_sum(tf.where(own, p, zeros)) / num_rows
    own_count = tf.reduce_sum(tf.cast(own, tf.float32), axis=0)
    entries = num_rows - own_count  # [N]
    positive = tf.reduce_sum(tf.where(own, scores, zeros), axis=1)
    difference = positive[:, None] - scores
    if excluded is None:
        masked = tf.zeros_like(entries)
        gap = tf.reduce_sum(tf.where(own, zeros, difference), axis=0)
    else:
        dropped = tf.logical_or(own, excluded)
        masked = tf.reduce_sum(tf.cast(tf.logical_and(excluded, ~own), tf.float32), axis=0)
        gap = tf.reduce_sum(tf.where(dropped, zeros, difference), axis=0)
    by_source = tf.one_hot(
        request.segments, request.num_segments, dtype=tf.float32
    )  # [N, S]; -1: no row
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
        rows=num_rows,
    )


def diagnostic_rows(num_rows: tf.Tensor, row_stride: int) -> tf.Tensor:
    """`[ceil(B / s)]` int32 rows `0, s, 2s, ...` of a batch of `B` rows (`s = row_stride`)."""
    return tf.range(0, tf.cast(num_rows, tf.int32), row_stride)


def rows_logits(
    scores: tf.Tensor, rows: tf.Tensor, inputs: CorrectionInputs
) -> Tuple[tf.Tensor, tf.Tensor, Optional[tf.Tensor], tf.Tensor]:
    """`corrected_logits` and `exclusion_mask` of some rows of the batch only.

    Row `k` of the result is batch row `rows[k]`: the rows' scores and per-row
    inputs are gathered (`CorrectionInputs.rows`, which keeps each positive's
    column), so the correction and masks are exactly the loss's.

    Args:
      scores: `[B, N]` float32 scores of the whole batch.
      rows: `[R]` int32 rows to compute.
      inputs: The whole batch's `CorrectionInputs`.

    Returns:
      `(scores [R, N], logits [R, N], excluded [R, N] bool or None, own [R, N] bool)`:
      the rows' scores, their corrected and masked logits, their masked entries,
      and their positives' entries.
    """
    scores = tf.gather(scores, rows)
    inputs = inputs.rows(rows)
    logits = corrected_logits(scores, inputs)
    excluded = exclusion_mask(scores, inputs)
    own = own_column_mask(scores, inputs.positive_columns)
    return scores, logits, excluded, own


def retrieval_statistics(
    scores: tf.Tensor,
    inputs: CorrectionInputs,
    request: StatisticsRequest,
    jit_compile: bool = False,
) -> NegativeStatistics:
    """`negative_statistics` of the logits `retrieval_loss` takes, on every `row_stride`-th row.

    Takes the loss's `scores` and `CorrectionInputs`, selects `diagnostic_rows`,
    builds the corrected, masked logits of those rows only (`rows_logits`) and
    measures them. Gaps are measured on `scores`. (With XLA the task computes them
    inside the loss's computation: `tfrs_negatives.ops.fused_loss_and_statistics`.)

    Args:
      scores: `[B, N]` float32 logits before correction.
      inputs: The step's `CorrectionInputs` (as `retrieval_loss`).
      request: The columns' sources and the row stride.
      jit_compile: Compute it as one XLA computation.

    Returns:
      A `NegativeStatistics` (no gradient flows through it).
    """
    function = _compiled_statistics if jit_compile else statistics_of_rows
    return function(scores, inputs, request._replace(row_stride=int(request.row_stride)))


def statistics_of_rows(
    scores: tf.Tensor, inputs: CorrectionInputs, request: StatisticsRequest
) -> NegativeStatistics:
    """`negative_statistics` of rows `0, s, 2s, ...` (uncompiled; see `retrieval_statistics`)."""
    scores = tf.stop_gradient(tf.cast(scores, tf.float32))
    rows = diagnostic_rows(tf.shape(scores)[0], request.row_stride)
    scores, logits, excluded, own = rows_logits(scores, rows, inputs)
    return negative_statistics(scores, logits, excluded, request, own)


# No autograph: the function's control flow is Python's over static values, and
# converting it costs seconds of tracing on the first step.
_compiled_statistics = tf.function(
    statistics_of_rows, jit_compile=True, reduce_retracing=True, autograph=False
)
