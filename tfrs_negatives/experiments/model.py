"""The TFRS tutorial's two-tower model with a pluggable retrieval task."""

from typing import Dict, List

from tfrs_negatives.tasks import CorrectedRetrieval

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs


def id_tower(vocabulary: np.ndarray, embedding_dim: int) -> tf.keras.Sequential:
    """`StringLookup` + `Embedding`: string ids `[B]` -> embeddings `[B, embedding_dim]`."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=vocabulary, mask_token=None),
            tf.keras.layers.Embedding(len(vocabulary) + 1, embedding_dim),
        ]
    )


class TwoTowerModel(tfrs.Model):
    """User-id and item-id towers (the TFRS retrieval tutorial's) and a retrieval task.

    Features: `user_id` and `movie_title` (`[B]` strings). A `CorrectedRetrieval`
    task also gets the item ids (log-Q, accidental hits), the item tower (to embed
    sampled and mined negatives) and the user ids (query-side mining, known
    positives); a plain `tfrs.tasks.Retrieval` gets the embeddings only.

    Args:
      users: `[U]` user vocabulary.
      items: `[N]` item vocabulary.
      task: The retrieval task.
      embedding_dim: Output dimension of both towers.
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        task: tf.keras.layers.Layer,
        embedding_dim: int = 32,
    ) -> None:
        super().__init__()
        self.query_tower = id_tower(users, embedding_dim)
        self.item_tower = id_tower(items, embedding_dim)
        self.task = task

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        queries = self.query_tower(features["user_id"])
        items = self.item_tower(features["movie_title"])
        if isinstance(self.task, CorrectedRetrieval):
            extra = {}
            if self.task.sampled_sources or self.task.per_row_sources:
                extra["candidate_tower"] = self.item_tower
            if self.task.per_row_sources:
                extra["query_ids"] = features["user_id"]
            return self.task(
                queries,
                items,
                candidate_ids=features["movie_title"],
                compute_metrics=False,
                training=training,
                **extra,
            )
        return self.task(queries, items, compute_metrics=False)


def build(model: TwoTowerModel, users: np.ndarray, items: np.ndarray) -> None:
    """Creates the towers' weights (eagerly, before training), e.g. to copy them."""
    model.query_tower(tf.constant(users[:1]))
    model.item_tower(tf.constant(items[:1]))


def tower_weights(model: TwoTowerModel) -> List[np.ndarray]:
    """The query tower's weights followed by the item tower's."""
    return model.query_tower.get_weights() + model.item_tower.get_weights()


def set_tower_weights(model: TwoTowerModel, weights: List[np.ndarray]) -> None:
    """Sets weights as returned by `tower_weights` (e.g. so runs start alike)."""
    n = len(model.query_tower.get_weights())
    model.query_tower.set_weights(weights[:n])
    model.item_tower.set_weights(weights[n:])
