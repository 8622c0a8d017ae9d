"""The retrieval loss, its gradient and the negative statistics as one XLA computation.

XLA compiles a computation once per input shape (on CPU about a second each for the
loss and as much again for the statistics, measured in
`benchmarks/peer_sampled_softmax.py`), so the loss, its gradient and the statistics of
a step share one compiled computation: one compilation per batch shape, not two.
"""

from typing import Optional, Tuple

from tfrs_negatives.ops.correction import CorrectionInputs
from tfrs_negatives.ops.diagnostics import (
    NegativeStatistics,
    StatisticsRequest,
    statistics_of_rows,
)
from tfrs_negatives.ops.logits import LossChoice, retrieval_loss

import tensorflow as tf


def _loss_gradient_statistics(
    scores: tf.Tensor,
    inputs: CorrectionInputs,
    sample_weight: Optional[tf.Tensor],
    choice: LossChoice,
    request: Optional[StatisticsRequest],
):
    with tf.GradientTape() as tape:
        tape.watch(scores)
        value = retrieval_loss(scores, inputs, sample_weight, choice)
    gradient = tape.gradient(value, scores)
    if request is None:
        return value, gradient, None
    return value, gradient, statistics_of_rows(scores, inputs, request)


# No autograph: the function's control flow is Python's over static values, and
# converting it costs seconds of tracing on the first step.
_compiled = tf.function(
    _loss_gradient_statistics, jit_compile=True, reduce_retracing=True, autograph=False
)


def fused_loss_and_statistics(
    scores: tf.Tensor,
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
      scores: `[B, N]` float32 logits.
      inputs, sample_weight, choice: As `retrieval_loss`.
      request: Optional `StatisticsRequest` (`tfrs_negatives.ops.diagnostics`); None:
        no statistics.

    Returns:
      `(scalar float32 loss, NegativeStatistics or None)`.
    """
    found = {}
    if request is not None:
        request = request._replace(row_stride=int(request.row_stride))

    @tf.custom_gradient
    def run(logits: tf.Tensor):
        value, gradient, statistics = _compiled(logits, inputs, sample_weight, choice, request)
        found["statistics"] = statistics
        return value, lambda upstream: upstream * gradient

    return run(scores), found["statistics"]


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
      scores: `[B, N]` float32 logits.
      inputs, sample_weight, choice: As `retrieval_loss`.

    Returns:
      Scalar float32 loss.
    """
    return fused_loss_and_statistics(scores, inputs, sample_weight, choice)[0]
