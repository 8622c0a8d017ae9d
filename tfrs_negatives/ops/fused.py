"""The retrieval loss, its gradient and the negative statistics as one XLA computation.

XLA compiles a computation once per input shape (on CPU about a second each for the
loss and as much again for the statistics, measured in
`benchmarks/peer_sampled_softmax.py`), so the loss, its gradient and the statistics of
a step share one compiled computation: one compilation per batch shape, not two.
"""

from typing import Optional, Tuple

from tfrs_negatives.ops.correction import CorrectionInputs
from tfrs_negatives.ops.diagnostics import NegativeStatistics, statistics_of_rows
from tfrs_negatives.ops.logits import retrieval_loss

import tensorflow as tf


def _loss_gradient_statistics(
    scores: tf.Tensor,
    inputs: CorrectionInputs,
    sample_weight: Optional[tf.Tensor],
    loss: str,
    num_items: Optional[int],
    gbce_calibration: float,
    segments: Optional[tf.Tensor],
    num_segments: int,
    row_stride: int,
):
    with tf.GradientTape() as tape:
        tape.watch(scores)
        value = retrieval_loss(scores, inputs, sample_weight, loss, num_items, gbce_calibration)
    gradient = tape.gradient(value, scores)
    if segments is None:
        return value, gradient, None
    statistics = statistics_of_rows(scores, inputs, segments, num_segments, row_stride)
    return value, gradient, statistics


_compiled = tf.function(_loss_gradient_statistics, jit_compile=True, reduce_retracing=True)


def fused_loss_and_statistics(
    scores: tf.Tensor,
    inputs: CorrectionInputs,
    sample_weight: Optional[tf.Tensor] = None,
    loss: str = "softmax",
    num_items: Optional[int] = None,
    gbce_calibration: float = 0.75,
    segments: Optional[tf.Tensor] = None,
    num_segments: int = 0,
    row_stride: int = 1,
) -> Tuple[tf.Tensor, Optional[NegativeStatistics]]:
    """`retrieval_loss` and (with `segments`) its logits' statistics, compiled together.

    The gradient with respect to `scores` is computed with the loss, inside the
    compiled function, and handed back through `tf.custom_gradient`: compiling the
    backward pass separately fails for dynamic batch sizes (XLA cannot take the
    forward's shapes as inputs). Only `scores` receives a gradient; the other
    arguments are constants of the step (probabilities, masks, weights), and no
    gradient flows through the statistics.

    Args:
      scores: `[B, N]` float32 logits.
      inputs, sample_weight, loss, num_items, gbce_calibration: As `retrieval_loss`.
      segments: Optional `[N]` int32 source of each column; None: no statistics.
      num_segments, row_stride: As `tfrs_negatives.ops.diagnostics.retrieval_statistics`.

    Returns:
      `(scalar float32 loss, NegativeStatistics or None)`.
    """
    found = {}

    @tf.custom_gradient
    def run(logits: tf.Tensor):
        value, gradient, statistics = _compiled(
            logits,
            inputs,
            sample_weight,
            loss,
            num_items,
            gbce_calibration,
            segments,
            int(num_segments),
            int(row_stride),
        )
        found["statistics"] = statistics
        return value, lambda upstream: upstream * gradient

    return run(scores), found["statistics"]


def fused_retrieval_loss(scores: tf.Tensor, *args, **kwargs) -> tf.Tensor:
    """`retrieval_loss` compiled with XLA, forward and backward in one computation.

    Correction, masks and loss fuse into a few passes over `[B, N]` instead of one
    pass per operation (measured in `benchmarks/logq_step_time.py`).

    Args:
      scores: `[B, N]` float32 logits.
      *args, **kwargs: As `retrieval_loss` (`inputs`, `sample_weight`, ...).

    Returns:
      Scalar float32 loss.
    """
    return fused_loss_and_statistics(scores, *args, **kwargs)[0]
