"""Global in-batch negatives under `tf.distribute`: the batch's candidates of every replica.

Under a synchronous strategy (`MirroredStrategy`, `MultiWorkerMirroredStrategy`,
`TPUStrategy`) each replica holds a slice of the global batch. TFRS scores a
replica's queries against its own slice only, so the loss depends on the number of
replicas (TFRS #138, #561, #710). Here every replica gathers the given candidates
(embeddings, ids, probabilities) of all replicas with `ReplicaContext.all_gather`
and scores its own queries against the global batch. `all_gather` is
differentiable: the gradient reaching a replica's own candidates is the sum over
every replica's loss, and the optimizer's sum across replicas then equals the
one-device gradient of the global batch (no term is counted twice).
"""

from typing import NamedTuple, Optional

import tensorflow as tf


class ReplicaSlice(NamedTuple):
    """Where a replica's rows sit among the global batch's given candidates.

    Attributes:
      context: The replica context the candidates were gathered in.
      offset: Scalar int32: column of this replica's first given candidate among
        the gathered ones (row `i`'s positive is column `offset + i`).
      num_local: Scalar int32: this replica's given candidates.
    """

    context: tf.distribute.ReplicaContext
    offset: tf.Tensor
    num_local: tf.Tensor


def _is_parameter_server(strategy: tf.distribute.Strategy) -> bool:
    return "ParameterServerStrategy" in type(strategy).__name__


def gathering_context(
    cross_replica_negatives: Optional[bool],
) -> Optional[tf.distribute.ReplicaContext]:
    """The replica context to gather candidates in, or None (one replica, or switched off).

    Args:
      cross_replica_negatives: The task's setting: None (gather under a synchronous
        strategy, per worker under `ParameterServerStrategy`), True (gather; an
        error where replicas do not step together), False (never gather).

    Raises:
      ValueError: True under `ParameterServerStrategy`, whose workers train
        asynchronously, so a batch has no other replicas to gather from.
    """
    if cross_replica_negatives is False or not tf.distribute.has_strategy():
        return None
    strategy = tf.distribute.get_strategy()
    if _is_parameter_server(strategy):
        if cross_replica_negatives:
            raise ValueError(
                "`cross_replica_negatives=True` needs replicas that step together, but "
                f"{type(strategy).__name__} trains its workers asynchronously: each batch "
                "has no other replicas. Pass cross_replica_negatives=None (the default: "
                "each worker's batch is its in-batch negatives) or False."
            )
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def replica_slice(context: tf.distribute.ReplicaContext, num_local: tf.Tensor) -> ReplicaSlice:
    """This replica's `ReplicaSlice` (replicas may hold different numbers of rows)."""
    num_local = tf.cast(num_local, tf.int32)
    sizes = all_gather(context, tf.reshape(num_local, [1]))  # [R]
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    before = tf.range(tf.shape(sizes)[0]) < replica
    offset = tf.reduce_sum(tf.where(before, sizes, tf.zeros_like(sizes)))
    return ReplicaSlice(context, offset, num_local)


def gathered(
    context: tf.distribute.ReplicaContext, values: Optional[tf.Tensor]
) -> Optional[tf.Tensor]:
    """Every replica's `values` concatenated along axis 0 in replica order (None stays None)."""
    if values is None:
        return None
    everyone = all_gather(context, values)
    everyone.set_shape([None, *values.shape[1:]])  # all_gather loses the static shape
    return everyone


def all_gather(context: tf.distribute.ReplicaContext, values: tf.Tensor) -> tf.Tensor:
    """`context.all_gather(values, axis=0)`, from a tensor placed on the replica's device.

    The gather sends its result to the input's device, and some tensors have none
    (the outputs of a `tf.cond`): `MultiWorkerMirroredStrategy` then fails with
    "destinations can not be empty". An identity in the replica's device scope places it.
    """
    return context.all_gather(tf.identity(values), axis=0)
