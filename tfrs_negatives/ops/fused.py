"""The retrieval loss, its gradient and the negative statistics as one XLA computation.

XLA compiles a computation once per input shape (on CPU about a second each for the
loss and as much again for the statistics, measured in
`benchmarks/peer_sampled_softmax.py`), so the loss, its gradient and the statistics of
a step share one compiled computation: one compilation per batch shape, not two.
"""

from typing import Optional, Sequence, Tuple, Union

from tfrs_negatives.ops.correction import CorrectionInputs
from tfrs_negatives.ops.diagnostics import (
    NegativeStatistics,
    StatisticsRequest,
    statistics_of_rows,
)
from tfrs_negatives.ops.logits import LossChoice, retrieval_loss

import tensorflow as tf


def _loss_gradient_statistics(
    blocks: Tuple[tf.Tensor, ...],
    inputs: CorrectionInputs,
    sample_weight: Optional[tf.Tensor],
    choice: LossChoice,
    request: Optional[StatisticsRequest],
):
    """Loss, its gradient with respect to each column block, and the statistics."""
    with tf.GradientTape() as tape:
        tape.watch(blocks)
        scores = blocks[0] if len(blocks) == 1 else tf.concat(blocks, 1)
        value = retrieval_loss(scores, inputs, sample_weight, choice)
    gradients = tape.gradient(value, list(blocks))
    if request is None:
        return value, gradients, None
    return value, gradients, statistics_of_rows(scores, inputs, request)


# No autograph: the function's control flow is Python's over static values, and
# converting it costs seconds of tracing on the first step.
_compiled = tf.function(
    _loss_gradient_statistics, jit_compile=True, reduce_retracing=True, autograph=False
)


def fused_loss_and_statistics(
    scores: Union[tf.Tensor, Sequence[tf.Tensor]],
    inputs: CorrectionInputs,
    sample_weight: Optional[tf.Tensor] = None,
    choice: Optional[LossChoice] = None,
    request: Optional[StatisticsRequest] = None,
) -> Tuple[tf.Tensor, Optional[NegativeStatistics]]:
    """`retrieval_loss` and (with a `request`) its logits' statistics, compiled together.

    The gradient with respect to `scores` is computed with the loss, inside the
    compiled function, and handed back through `tf.custom_gradient`: compiling the
    backward pass separately fails for dynamic batch sizes (XLA cannot take the
    forward's shapes as inputs). Only `scores` receives a gradient; the other
    arguments are constants of the step (probabilities, masks, weights), and no
    gradient flows through the statistics.

    Args:
      scores: `[B, N]` float32 logits, or their column blocks (`[B, n_k]` each,
        `sum n_k = N`, e.g. each row's positive and the shared draws): blocks are
        joined inside the compiled computation, so neither the join nor the split
        of its gradient is a pass of its own.
      inputs, sample_weight, choice: As `retrieval_loss`.
      request: Optional `StatisticsRequest` (`tfrs_negatives.ops.diagnostics`); None:
        no statistics.

    Returns:
      `(scalar float32 loss, NegativeStatistics or None)`.
    """
    blocks = tuple(scores) if isinstance(scores, (list, tuple)) else (scores,)
    choice = choice or LossChoice()
    found = {}
    if request is not None:
        request = request._replace(row_stride=int(request.row_stride))

    @tf.custom_gradient
    def run(*pieces: tf.Tensor):
        value, gradients, statistics = _compiled(pieces, inputs, sample_weight, choice, request)
        found["statistics"] = statistics

        def backward(upstream: tf.Tensor):
            return [_scaled(gradient, upstream) for gradient in gradients]

        return value, backward

    return run(*blocks), found["statistics"]


def _scaled(gradient: tf.Tensor, upstream: tf.Tensor) -> tf.Tensor:
    """`upstream * gradient`, skipping the `[B, N]` pass when `upstream` is 1 (the usual case)."""
    return tf.cond(
        tf.equal(upstream, 1.0), lambda: tf.identity(gradient), lambda: upstream * gradient
    )


def fused_retrieval_loss(
    scores: tf.Tensor,
    inputs: CorrectionInputs,
    sample_weight: Optional[tf.Tensor] = None,
    choice: Optional[LossChoice] = None,
) -> tf.Tensor:
    """`retrieval_loss` compiled with XLA, forward and backward in one computation.

    Correction, masks and loss fuse into a few passes over `[B, N]` instead of one
    pass per operation (measured in `benchmarks/logq_step_time.py`).

    Args:
      scores: `[B, N]` float32 logits (or column blocks: see `fused_loss_and_statistics`).
      inputs, sample_weight, choice: As `retrieval_loss`.

    Returns:
      Scalar float32 loss.
    """
    return fused_loss_and_statistics(scores, inputs, sample_weight, choice)[0]
