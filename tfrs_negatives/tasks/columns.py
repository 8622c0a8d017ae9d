"""The candidate columns of a step: the batch's, then each source's draws, with their masks."""

from typing import Callable, NamedTuple, Optional, Sequence, Tuple

from tfrs_negatives import ops
from tfrs_negatives.negatives.row_draws import RowContext
from tfrs_negatives.negatives.sources import NegativeSource

import tensorflow as tf


class Columns(NamedTuple):
    """Everything the loss needs to know of the `[N]` candidate columns.

    Two layouts (see `tfrs_negatives.ops.CorrectionInputs`):

    * with in-batch negatives, the TFRS layout: the given candidates' columns
      (row `i`'s positive is column `i`), then each source's draws;
    * without (`positive_first`), sampled softmax: column 0 holds each row's own
      positive (a `[B, 1]` row-wise product, no `[B, B]` block), then the draws.

    Attributes:
      embeddings: `[N, D]` float32 embeddings of the shared columns: the given rows
        then the draws; without in-batch negatives the draws only (the positive
        column is per row).
      ids: `[N]` int64 ids of the columns (without in-batch negatives, column 0
        holds a placeholder), or None when no id is needed.
      blocks: Python list of `(source, start, count)` column blocks in order; the
        first, with source None, is the given (in-batch) block, or the one positive
        column (count 1) without in-batch negatives.
      positive_first: Whether column 0 holds each row's positive.
    """

    embeddings: tf.Tensor
    ids: Optional[tf.Tensor]
    blocks: list
    positive_first: bool = False

    def positive_columns(self, num_queries: tf.Tensor) -> Optional[tf.Tensor]:
        """`[B]` zeros when each row's positive is column 0; None for the diagonal."""
        return tf.zeros([num_queries], tf.int32) if self.positive_first else None


class LogitInputs(NamedTuple):
    """The column-level inputs of the corrected logits, extended together by mined columns.

    Attributes:
      scores: `[B, N]` scores (after temperature).
      probabilities: `[N]` sampling probabilities of the columns, or None.
      column_excluded: `[N]` bool, columns excluded for every row, or None.
      column_log_weight: `[N]` log weights added to the columns, or None.
      score_mask: `[B, N]` bool, False entries excluded, or None.
    """

    scores: tf.Tensor
    probabilities: Optional[tf.Tensor]
    column_excluded: Optional[tf.Tensor]
    column_log_weight: Optional[tf.Tensor]
    score_mask: Optional[tf.Tensor]


def draw_columns(
    candidate_embeddings: tf.Tensor,
    ids: Optional[tf.Tensor],
    sampled: Sequence[NegativeSource],
    candidate_tower: Optional[Callable],
    positive_first: bool = False,
) -> Columns:
    """Draws each source's candidates and embeds them with `candidate_tower` in one call.

    Sources that supply their embeddings (`supplies_embeddings`, e.g. `CrossBatch`)
    are called on the given embeddings and return `(ids, embeddings)` themselves.
    With `positive_first` (no in-batch negatives) the given candidates are not
    columns: one positive column (count 1) comes first, then the draws.
    """
    given = tf.cast(candidate_embeddings, tf.float32)
    first = (None, 0, 1) if positive_first else (None, 0, None)
    first_ids = None if ids is None else (ids[:1] if positive_first else ids)
    if not sampled:
        empty = tf.zeros([0, given.shape[-1]], tf.float32)
        return Columns(empty if positive_first else given, first_ids, [first], positive_first)
    drawn = _embedded_draws(given, sampled, candidate_tower)
    start = 1 if positive_first else tf.shape(given)[0]
    blocks = [first if positive_first else (None, 0, start)]
    for source in sampled:
        blocks.append((source, start, source.count))
        start = start + source.count
    embedded = tf.concat([e for _, e in drawn], 0)
    shared = embedded if positive_first else tf.concat([given, embedded], 0)
    return Columns(
        shared, tf.concat([first_ids] + [i for i, _ in drawn], 0), blocks, positive_first
    )


def _embedded_draws(
    given: tf.Tensor, sampled: Sequence[NegativeSource], candidate_tower: Optional[Callable]
) -> list:
    """`[(ids [K_s], embeddings [K_s, D])]` per source, in order; one tower call for all."""
    towered = [s for s in sampled if not s.supplies_embeddings]
    embedded = {}
    if towered:
        if candidate_tower is None:
            names = ", ".join(type(s).__name__ for s in towered)
            raise ValueError(
                f"`candidate_tower` is required by the negative sources ({names}): pass the "
                "model's candidate tower to the task call, e.g. `candidate_tower=self.item_tower`."
            )
        draws = [source(None) for source in towered]
        features = tf.nest.map_structure(lambda *parts: tf.concat(parts, 0), *[f for _, f in draws])
        out = tf.cast(candidate_tower(features), tf.float32)
        if out.shape.rank != 2 or out.shape[-1] != given.shape[-1]:
            raise ValueError(
                "`candidate_tower` must return [n, D] embeddings for the sampled candidates with "
                f"the dimension of `candidate_embeddings` ({given.shape[-1]}), got shape "
                f"{out.shape}."
            )
        pieces = tf.split(out, [s.count for s in towered], axis=0)
        for source, (draw_ids, _), piece in zip(towered, draws, pieces):
            embedded[id(source)] = (draw_ids, piece)
    for source in sampled:
        if source.supplies_embeddings:
            draw_ids, vectors = source(given)
            embedded[id(source)] = (draw_ids, tf.cast(vectors, tf.float32))
    return [embedded[id(source)] for source in sampled]


def column_scores(
    query_embeddings: tf.Tensor, given: tf.Tensor, columns: Columns
) -> Tuple[tf.Tensor, ...]:
    """The columns' float32 scores as column blocks (max over heads for `[B, H, D]` queries).

    `([B, N],)` in the TFRS layout; without in-batch negatives `([B, 1], [B, K])`:
    each row's score with its own positive (`given[:B]`, a row-wise product), then
    the shared draws'. The blocks are joined where needed (inside the fused loss).
    """
    queries = tf.cast(query_embeddings, tf.float32)
    shared = _dot_scores(queries, columns.embeddings)
    if not columns.positive_first:
        return (shared,)
    positives = tf.cast(given[: tf.shape(queries)[0]], tf.float32)
    if queries.shape.rank == 3:
        own = tf.reduce_max(tf.einsum("bhd,bd->bh", queries, positives), axis=1)
    else:
        own = tf.reduce_sum(queries * positives, axis=1)
    return (own[:, None], shared)


def joined(blocks: Sequence[tf.Tensor]) -> tf.Tensor:
    """`[B, N]` scores of column blocks."""
    return blocks[0] if len(blocks) == 1 else tf.concat(list(blocks), 1)


def _dot_scores(queries: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    if queries.shape.rank == 3:
        return tf.reduce_max(tf.einsum("qhd,cd->qhc", queries, candidates), axis=1)
    return tf.linalg.matmul(queries, candidates, transpose_b=True)


def mixture_probabilities(  # noqa: PLR0913 (the batch's part, then the sources)
    ids: tf.Tensor,
    in_batch_probabilities: Optional[tf.Tensor],
    in_batch_draws: tf.Tensor,
    sampled: Sequence[NegativeSource],
    mask_duplicates: bool,
    stream_probabilities: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """`[N]` probability of each candidate of `ids` (`[N]` int64) under the mixture of sources.

    `in_batch_probabilities` (`[N]`, per-example probability of every id, or None
    when the batch is not a source) and `in_batch_draws` are the batch's part; each
    sampled source adds its own. A source whose draws follow the training stream
    (`follows_stream`, e.g. `CrossBatch`) has the per-draw probability
    `stream_probabilities` (`[N]`, the in-batch `q` of `ids`). With
    `mask_duplicates` the inclusion probability, else the expected share
    (`tfrs_negatives.ops.mixture`).
    """
    parts = []  # (source, or None for the batch; per-draw probabilities; draws)
    if in_batch_probabilities is not None:
        parts.append((None, in_batch_probabilities, tf.cast(in_batch_draws, tf.float32)))
    for source in sampled:
        p = None
        if source.follows_stream:
            if stream_probabilities is None:
                raise ValueError(
                    f"`{source.name}` ({type(source).__name__}) draws from the training stream: "
                    "its probability is the in-batch `q`, so give the task a `frequency` "
                    "estimator (e.g. StreamingFrequencyEstimator())."
                )
            p = stream_probabilities
        parts.append((source, p, tf.cast(source.active_draws(), tf.float32)))
    if mask_duplicates:
        misses = [
            ops.log_miss_with_replacement(p, draws)
            if p is not None
            else source.log_miss_probability(ids, draws)
            for source, p, draws in parts
        ]
        return ops.inclusion_probability(tf.stack(misses))
    if len(parts) == 1 and parts[0][0] is None:
        return in_batch_probabilities
    probabilities = [p if p is not None else source.draw_probability(ids) for source, p, _ in parts]
    return ops.expected_share(tf.stack(probabilities), tf.stack([d for _, _, d in parts]))


def column_exclusions(
    columns: Columns,
    in_batch_weight: Optional[tf.Tensor],
    mask_duplicates: bool,
):
    """`(column_excluded [N] bool, column_log_weight [N] float32)` for the columns.

    Excluded (for every row but its own): given columns beyond the positives when
    the batch is not a source (`in_batch_weight` None) or its weight is 0; a source's
    draws beyond its `active_count` or all of them at weight 0; with
    `mask_duplicates`, every copy of an id but its first active column.
    """
    excluded, log_weight = [], []
    for source, _, count in columns.blocks:
        if source is None:
            n = tf.shape(columns.embeddings)[0] if count is None else count
            weight = tf.zeros([]) if in_batch_weight is None else in_batch_weight
            excluded.append(tf.fill([n], weight <= 0.0))
            log_weight.append(tf.fill([n], tf.math.log(tf.maximum(weight, 1e-30))))
        else:
            inactive = tf.range(count) >= source.active_draws()
            excluded.append(tf.logical_or(inactive, source.weight <= 0.0))
            log_weight.append(tf.fill([count], tf.math.log(tf.maximum(source.weight, 1e-30))))
    column_excluded = tf.concat(excluded, 0)
    column_log_weight = tf.concat(log_weight, 0)
    if mask_duplicates:
        column_excluded = tf.logical_or(
            column_excluded, tf.logical_not(first_active_copy(columns.ids, column_excluded))
        )
    return column_excluded, column_log_weight


def first_active_copy(ids: tf.Tensor, excluded: tf.Tensor) -> tf.Tensor:
    """`[N]` True at the first non-excluded column of each distinct id."""
    n = tf.shape(ids)[0]
    _, group = tf.unique(ids, out_idx=tf.int32)
    position = tf.range(n)
    candidate = tf.where(excluded, n, position)
    first = tf.math.unsorted_segment_min(candidate, group, n)
    return tf.logical_and(tf.logical_not(excluded), tf.equal(tf.gather(first, group), position))


class RowColumns(NamedTuple):
    """The per-row (mined) columns of a step, appended after the shared ones.

    Attributes:
      scores: `[B, M]` float32 raw scores (before the temperature).
      ids: `[B, M]` int64 ids.
      blocks: `(source, None, count)` per mined source, in column order.
      valid: `[B, M]` bool, False for draws the source masks (padding), or None.
      probabilities: `[B, M]` float32 per-draw probability `p_i(j)` of the draws of
        sources that sample from a per-row distribution (`Cache`, `Dynamic` with
        `select="softmax"`), 0 for chosen (certain) ones; None when no source samples.
      samplers: `(source, probability_of)` per sampling source: `probability_of(ids
        [B, n], raw_scores [B, n]) -> [B, n]` is `p_i(j)` of one of its draws for
        row `i` at any ids (`RowDraw.probability_of`).
    """

    scores: Optional[tf.Tensor] = None
    ids: Optional[tf.Tensor] = None
    blocks: tuple = ()
    valid: Optional[tf.Tensor] = None
    probabilities: Optional[tf.Tensor] = None
    samplers: tuple = ()


def _window_draw(source: NegativeSource, anchors: dict, negative_ids, query_ids) -> tuple:
    """`(ids [B, k], features [B * k, ...], valid [B, k])` of a windowed source (`Mined`, ...)."""
    if source.side == "features" and negative_ids is None:
        raise ValueError(
            f"`negative_ids` is required by `{source.name}` (FromFeatures): pass the "
            "[B, W] mined ids of each row to the task call (`negative_ids=features[...]`)."
        )
    if source.side == "query" and query_ids is None:
        raise ValueError(
            "`query_ids` is required by query-side mined negatives (side='query'): pass "
            "the [B] query ids to the task call."
        )
    if source.known_positives is not None and query_ids is None:
        raise ValueError(
            f"`query_ids` is required by `{source.name}`, whose `known_positives` filter "
            "looks up (query, item) pairs: pass the [B] query ids to the task call "
            "(`query_ids=features[...]`), got None."
        )
    row_ids, row_features, _, row_valid = source.sample_rows(anchors[source.side])
    return row_ids, row_features, row_valid


def draw_row_columns(  # noqa: PLR0913 (each source's anchors, then the tower)
    query_embeddings: tf.Tensor,
    per_row: Sequence[NegativeSource],
    positive_ids: tf.Tensor,
    query_ids: Optional[tf.Tensor],
    candidate_tower: Optional[Callable],
    negative_ids: Optional[tf.Tensor] = None,
    context: Optional[RowContext] = None,
) -> RowColumns:
    """Per-row negatives: their `[B, M]` raw scores, ids, blocks, validity and probabilities.

    A windowed source draws `count` candidates per row from the anchor of its side
    (the row's positive id, its query id, or for `FromFeatures` the row's `[W]`
    `negative_ids`); their features are embedded with `candidate_tower` in one call.
    A scoring source (`draw_rows`: `Cache`, `Dynamic`) is given the step's
    `context` and returns its draws embedded.
    """
    if candidate_tower is None:
        raise ValueError(
            "`candidate_tower` is required by mined negatives: pass the model's candidate "
            "tower to the task call."
        )
    if query_embeddings.shape.rank != 2:
        raise ValueError(
            "Mined negatives need `query_embeddings` of shape [B, D], got shape "
            f"{query_embeddings.shape}."
        )
    b = tf.shape(query_embeddings)[0]
    anchors = {"item": positive_ids, "query": query_ids, "features": negative_ids}
    parts, windowed = [], []  # parts: [ids, valid, probabilities, embeddings or None]
    samplers = []
    for source in per_row:
        if hasattr(source, "draw_rows"):
            draw = source.draw_rows(context)
            if draw.probability_of is not None:
                samplers.append((source, draw.probability_of))
            probabilities = draw.probabilities
            if probabilities is None:
                probabilities = tf.zeros(tf.shape(draw.ids), tf.float32)
            parts.append([draw.ids, draw.valid, probabilities, draw.embeddings])
        else:
            row_ids, row_features, row_valid = _window_draw(
                source, anchors, negative_ids, query_ids
            )
            zeros = tf.zeros(tf.shape(row_ids), tf.float32)
            parts.append([row_ids, row_valid, zeros, None])
            windowed.append((len(parts) - 1, source.count, row_features))
    if windowed:
        merged = tf.nest.map_structure(
            lambda *pieces: tf.concat(pieces, 0), *[f for _, _, f in windowed]
        )
        embedded = tf.cast(candidate_tower(merged), tf.float32)
        start = 0
        for index, count, _ in windowed:  # row-major per source: [B * count] -> [B, count, D]
            size = b * count
            parts[index][3] = tf.reshape(embedded[start : start + size], [b, count, -1])
            start += size
    row_embeddings = tf.concat([tf.cast(p[3], tf.float32) for p in parts], 1)  # [B, M, D]
    queries = tf.cast(query_embeddings, tf.float32)
    scores = tf.einsum("bd,bmd->bm", queries, row_embeddings)
    sampled = any(hasattr(s, "draw_rows") and s.samples_rows for s in per_row)
    return RowColumns(
        scores,
        tf.concat([p[0] for p in parts], 1),
        tuple((source, None, source.count) for source in per_row),
        tf.concat([p[1] for p in parts], 1),
        tf.concat([p[2] for p in parts], 1) if sampled else None,
        tuple(samplers),
    )


def row_exclusions(
    rows: RowColumns,
    positive_ids: tf.Tensor,
    query_ids: Optional[tf.Tensor],
    positive_scores: tf.Tensor,
):
    """`(excluded [B, M] bool, column_excluded [M], column_log_weight [M])` of mined columns.

    Excluded per row: the row's positive, draws a source marks invalid (padding), the
    query's known positives, and with a
    margin the candidates scoring above `s_pos - margin |s_pos|`; per column: draws
    beyond `active_count` and sources at weight 0. `positive_scores` (`[B]`) are the
    rows' raw positive scores.
    """
    excluded = tf.equal(rows.ids, positive_ids[:, None])
    if rows.valid is not None:
        excluded = tf.logical_or(excluded, tf.logical_not(rows.valid))
    column_excluded, log_weight, pieces, start = [], [], [], 0
    for source, _, count in rows.blocks:
        part_ids = rows.ids[:, start : start + count]
        part = tf.zeros(tf.shape(part_ids), tf.bool)
        if source.known_positives is not None and query_ids is not None:
            part = tf.logical_or(
                part, source.known_positives.contains(query_ids[:, None], part_ids)
            )
        if source.margin is not None:
            threshold = positive_scores - source.margin * tf.abs(positive_scores)
            part = tf.logical_or(part, rows.scores[:, start : start + count] > threshold[:, None])
        pieces.append(part)
        column_excluded.append(
            tf.logical_or(tf.range(count) >= source.active_draws(), source.weight <= 0.0)
        )
        log_weight.append(tf.fill([count], tf.math.log(tf.maximum(source.weight, 1e-30))))
        start += count
    excluded = tf.logical_or(excluded, tf.concat(pieces, 1))
    return excluded, tf.concat(column_excluded, 0), tf.concat(log_weight, 0)


def column_sources(
    columns: Columns,
    num_given: tf.Tensor,
    sources: Sequence[NegativeSource],
    rows: Optional[RowColumns] = None,
) -> tf.Tensor:
    """`[N (+ M)]` int32 index in `sources` of each column's source; -1 for none.

    The given block belongs to the in-batch source (the positive column of the
    sampled-softmax layout to none); a sampled or
    mined source's columns to it while within its `active_count` (-1 beyond).
    `rows` are the mined columns, after the shared ones.
    """
    index = {id(source): k for k, source in enumerate(sources)}
    in_batch = next((k for k, s in enumerate(sources) if s.in_batch), -1)
    first = 1 if columns.positive_first else num_given
    pieces = [tf.fill([first], -1 if columns.positive_first else in_batch)]
    row_blocks = () if rows is None else rows.blocks
    for source, _, count in list(columns.blocks[1:]) + list(row_blocks):
        active = tf.range(count) < source.active_draws()
        pieces.append(tf.where(active, index[id(source)], -1))
    return tf.concat(pieces, 0)


def distinct_counts(
    columns: Columns,
    given_ids: Optional[tf.Tensor],
    sources: Sequence[NegativeSource],
    rows: Optional[RowColumns] = None,
) -> list:
    """Per source in `sources`, the scalar number of distinct ids among its active candidates.

    The in-batch source's candidates are the given ones (`given_ids`, `[N0]` int64;
    None when unknown gives None); a sampled source's, its active draws; a mined
    source's, its active columns of every row of `rows`.
    """

    def distinct(ids: tf.Tensor) -> tf.Tensor:
        return tf.size(tf.unique(tf.reshape(ids, [-1]))[0])

    counts = {}
    for source, start, _ in columns.blocks[1:]:
        counts[id(source)] = distinct(columns.ids[start : start + source.active_draws()])
    start = 0
    for source, _, count in () if rows is None else rows.blocks:
        counts[id(source)] = distinct(rows.ids[:, start : start + source.active_draws()])
        start += count
    result = []
    for source in sources:
        if source.in_batch:
            result.append(None if given_ids is None else distinct(given_ids))
        else:
            result.append(counts.get(id(source)))
    return result


def later_copies(ids: tf.Tensor) -> tf.Tensor:
    """`[B, k]` True where row `i`'s id at slot `s` already appears at a slot `< s`."""
    same = tf.equal(ids[:, :, None], ids[:, None, :])  # [B, s, t]
    slots = tf.range(tf.shape(ids)[1])
    earlier = slots[None, :] < slots[:, None]  # [s, t]: t < s
    return tf.reduce_any(tf.logical_and(same, earlier[None]), axis=2)
