"""What a per-row source that scores its candidates is given, and what it gives back.

`Mined` and `FromFeatures` draw from windows given to them (`sample_rows`). The
sources here choose each row's negatives from the step's own scores: `Cache` from
the cached embeddings of the whole catalogue, `Dynamic` among candidates it draws
and embeds. They implement `draw_rows(context) -> RowDraw`; the task calls it with
the step's `RowContext`.
"""

from typing import Any, Callable, NamedTuple, Optional

import tensorflow as tf


class RowContext(NamedTuple):
    """The step as a per-row source sees it.

    Attributes:
      queries: `[B, D]` float32 query embeddings (with their gradient).
      positive_ids: `[B]` int64 ids of the rows' positives.
      positive_embeddings: `[B, D]` float32 embeddings of the rows' positives.
      positive_scores: `[B]` float32 raw scores of the rows' positives.
      candidate_tower: The task call's `candidate_tower`.
      training: The task call's `training` flag (None, a bool or a bool tensor).
      query_ids: `[B]` int64 query ids, or None.
    """

    queries: tf.Tensor
    positive_ids: tf.Tensor
    positive_embeddings: tf.Tensor
    positive_scores: tf.Tensor
    candidate_tower: Optional[Callable]
    training: Any = None
    query_ids: Optional[tf.Tensor] = None


class RowDraw(NamedTuple):
    """A per-row source's `count` negatives of each row.

    Attributes:
      ids: `[B, count]` int64 ids.
      embeddings: `[B, count, D]` float32 embeddings, with the gradient of the
        tower that made them.
      valid: `[B, count]` bool, False for draws the task must mask.
      probabilities: `[B, count]` float32 probability `p_i(j)` that one of the
        row's draws is the drawn id, when the draws are samples of a known
        per-row distribution (the task corrects them by it); None when they are
        chosen, not sampled (each is then one certain term, as a mined negative).
      probability_of: With `probabilities`, a function `(ids [B, n] int64,
        raw_scores [B, n]) -> [B, n]` giving `p_i(j)` at any ids of each row (0 for
        ids the source cannot draw): the task needs it at the other columns to
        correct every column by the whole mixture.
    """

    ids: tf.Tensor
    embeddings: tf.Tensor
    valid: tf.Tensor
    probabilities: Optional[tf.Tensor] = None
    probability_of: Optional[Callable] = None


def is_training(training: Any) -> tf.Tensor:
    """Scalar bool: True unless `training` is False (None counts as training, as Keras)."""
    if training is None:
        return tf.constant(True)
    if isinstance(training, bool):
        return tf.constant(training)
    return tf.cast(training, tf.bool)


def gumbel_max_draws(
    generator: tf.random.Generator, logits: tf.Tensor, count: int
) -> tf.Tensor:
    """`[B, count]` int32 indices drawn with replacement from `softmax(logits)` of each row.

    The Gumbel-max trick: `argmax_j(logits_ij + g_ij)` with `g = -log(-log u)`,
    `u ~ U(0, 1)`, is a draw from the row's softmax (Gumbel 1954; Maddison et al.
    2014). Each of the `count` draws has noise of its own: `count` passes over the
    `[B, N]` logits (memory `B * N`).

    Args:
      generator: The source's `tf.random.Generator`.
      logits: `[B, N]` float32 logits; a very negative finite value excludes an entry.
      count: Draws per row.
    """
    shape = tf.shape(logits)
    tiny = tf.constant(1e-20, tf.float32)

    def one_draw() -> tf.Tensor:
        u = generator.uniform(shape, minval=0.0, maxval=1.0, dtype=tf.float32)
        gumbel = -tf.math.log(-tf.math.log(u + tiny) + tiny)
        return tf.argmax(logits + gumbel, axis=1, output_type=tf.int32)

    return tf.stack([one_draw() for _ in range(count)], axis=1)
