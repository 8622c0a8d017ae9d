"""The small two-tower model the benchmarks train: id (or content) towers and a task.

A benchmark run as `python benchmarks/<name>.py` finds this module beside it
(`from _towers import TaskCall, TwoTower, string_id_tower`).
"""

from typing import Callable, Dict, NamedTuple

import tfrs_negatives  # noqa: F401  (before TensorFlow: Keras 2 for TFRS)

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

#: Users of the synthetic id batches (`zipf_id_batches`).
NUM_USERS = 10_000


def zipf_id_batches(num_items: int, batch_size: int, num_batches: int, seed: int = 0) -> list:
    """`num_batches` batches of int64 `user_id` (uniform over `NUM_USERS`) and `item_id`.

    Items are drawn with Zipf(1.0) popularity over a random permutation of `0..N-1`.
    """
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, num_items + 1))
    cdf /= cdf[-1]
    rank_to_item = rng.permutation(num_items).astype(np.int64)
    batches = []
    for _ in range(num_batches):
        ranks = np.minimum(np.searchsorted(cdf, rng.random(batch_size)), num_items - 1)
        users = rng.integers(0, NUM_USERS, batch_size, dtype=np.int64)
        batches.append({"user_id": tf.constant(users), "item_id": tf.constant(rank_to_item[ranks])})
    return batches


def string_id_tower(vocabulary: np.ndarray, dim: int) -> tf.keras.Sequential:
    """`StringLookup` + `Embedding` (the TFRS tutorial's): `[B]` string ids -> `[B, dim]`."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=vocabulary),
            tf.keras.layers.Embedding(len(vocabulary) + 1, dim),
        ]
    )


class FeatureTower(tf.keras.layers.Layer):
    """Item tower over fixed item features: `[B]` int ids -> `Dense(64, relu)` -> `[B, dim]`."""

    def __init__(self, features: np.ndarray, dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.features = tf.constant(features)
        self.content = tf.keras.Sequential(
            [tf.keras.layers.Dense(64, activation="relu"), tf.keras.layers.Dense(dim)]
        )

    def call(self, item_ids: tf.Tensor) -> tf.Tensor:
        return self.content(tf.gather(self.features, item_ids))


class TaskCall(NamedTuple):
    """What `TwoTower.compute_loss` passes the task besides the two embeddings.

    Attributes:
      item_key: The feature holding the item ids (`[B]`), passed as `candidate_ids`.
      candidate_tower: Also pass the item tower (sampled and mined sources embed with it).
      query_ids: Also pass the user ids (query-side mining, known positives).
      pass_training: Pass `training` (stock `tfrs.tasks.Retrieval` takes none).
    """

    item_key: str = "item_id"
    candidate_tower: bool = True
    query_ids: bool = False
    pass_training: bool = True


DEFAULT_CALL = TaskCall()


class TwoTower(tfrs.Model):
    """Query and item towers and a retrieval task, called the way a benchmark needs.

    Features: `user_id` and `call.item_key` (`[B]` ids). The task always gets the item ids
    (`candidate_ids`) and `compute_metrics=False`.

    Args:
      query_tower: `[B]` user ids -> `[B, D]`.
      item_tower: `[B]` item ids -> `[B, D]`.
      task: The retrieval task.
      call: What else the task is given (`TaskCall`).
    """

    def __init__(
        self,
        query_tower: Callable,
        item_tower: Callable,
        task: tf.keras.layers.Layer,
        call: TaskCall = DEFAULT_CALL,
    ) -> None:
        super().__init__()
        self.query_tower = query_tower
        self.item_tower = item_tower
        self.task = task
        self._call = call

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        ids = features[self._call.item_key]
        kwargs = {}
        if self._call.candidate_tower:
            kwargs["candidate_tower"] = self.item_tower
        if self._call.query_ids:
            kwargs["query_ids"] = features["user_id"]
        if self._call.pass_training:
            kwargs["training"] = training
        return self.task(
            self.query_tower(features["user_id"]),
            self.item_tower(ids),
            candidate_ids=ids,
            compute_metrics=False,
            **kwargs,
        )
