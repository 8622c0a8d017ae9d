"""In-graph state of hard-negative mining: the mined table and the known positives."""

from typing import Any, Dict, Optional

from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class HardNegativeTable(tf.keras.layers.Layer):
    """Mined neighbours of each anchor, as variables the training step reads.

    `neighbours[a]` holds catalogue rows in rank order (padded with -1) and
    `counts[a]` how many are valid. A refresh (`assign`) replaces both between
    steps; checkpoints carry them.

    Args:
      anchor_ids: `[A]` distinct ids of the anchors: the catalogue's ids for
        item-side mining (neighbours of the positive item), query ids for
        query-side mining.
      window: Entries per anchor (`max_rank - min_rank` of the miner).
    """

    def __init__(self, anchor_ids: Any, window: int, **kwargs: Any) -> None:
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"`window` must be a positive integer, got {window!r}.")
        self.anchors = anchor_ids if isinstance(anchor_ids, Catalogue) else Catalogue(anchor_ids)
        self.window = int(window)
        size = self.anchors.size
        self.neighbours = self.add_weight(
            name="neighbours",
            shape=[size, self.window],
            dtype=tf.int64,
            trainable=False,
            initializer=tf.constant_initializer(-1),
        )
        self.counts = self.add_weight(
            name="counts", shape=[size], dtype=tf.int32, trainable=False, initializer="zeros"
        )
        self.refreshes = self.add_weight(
            name="refreshes", shape=[], dtype=tf.int64, trainable=False, initializer="zeros"
        )

    def assign(self, neighbours: np.ndarray, counts: np.ndarray) -> None:
        """Replaces the table (checked first, then written together)."""
        neighbours = np.asarray(neighbours, np.int64)
        counts = np.asarray(counts, np.int32)
        expected = (self.anchors.size, self.window)
        if neighbours.shape != expected or counts.shape != (self.anchors.size,):
            raise ValueError(
                f"`neighbours` must have shape {expected} and `counts` ({expected[0]},), got "
                f"{neighbours.shape} and {counts.shape}."
            )
        if (counts < 0).any() or (counts > self.window).any():
            raise ValueError(f"`counts` must lie in [0, {self.window}].")
        self.neighbours.assign(neighbours)
        self.counts.assign(counts)
        self.refreshes.assign_add(1)

    def rows(self, anchor_ids: tf.Tensor):
        """`(row [n] int64, found [n] bool)` of `[n]` int64 anchor ids."""
        return self.anchors.lookup(anchor_ids)

    def call(self, anchor_ids: tf.Tensor) -> tuple:
        """The mined entries of `[n]` anchor ids (int32/int64/string, as `anchor_ids`).

        Returns:
          `(neighbours [n, window] int64, counts [n] int32)`: catalogue rows in rank
          order padded with -1, and how many are valid; an anchor not in the table
          gets a row of -1 and count 0.
        """
        row, found = self.rows(to_int64_ids(tf.reshape(anchor_ids, [-1]), "anchor_ids"))
        neighbours = tf.where(found[:, None], tf.gather(self.neighbours, row), -1)
        counts = tf.where(found, tf.gather(self.counts, row), 0)
        return neighbours, counts

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(anchor_ids=self.anchors.get_config()["ids"], window=self.window)
        return config


class KnownPositives(tf.Module):
    """The set of (query, item) pairs seen as positives, queried in-graph.

    Keys combine the two int64 ids (strings fingerprinted) as
    `query XOR rotate_left(item, 32)`: exact for ids below 2^32, and for
    fingerprints a collision is as unlikely as a 64-bit hash collision.

    Args:
      query_ids: `[n]` query ids of the positive pairs.
      item_ids: `[n]` item ids.
    """

    def __init__(
        self,
        query_ids: Any = None,
        item_ids: Any = None,
        keys: Any = None,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name=name)
        if keys is None:
            if query_ids is None or item_ids is None:
                raise ValueError("Give `query_ids` and `item_ids` (or the `keys` of a config).")
            keys = pair_keys(
                to_int64_ids(query_ids, "query_ids"), to_int64_ids(item_ids, "item_ids")
            ).numpy()
        keys = np.unique(np.asarray(keys, np.int64))
        if keys.size == 0:
            raise ValueError("`query_ids`/`item_ids` hold no pair: no known positive.")
        self.size = int(keys.size)
        self.keys = keys
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, np.ones_like(keys)), default_value=0
        )

    @classmethod
    def from_dataset(cls, dataset: tf.data.Dataset, query_key: str, item_key: str):
        """Reads `(query, item)` pairs from a dataset of feature dicts, in one pass."""
        spec = dataset.element_spec
        if not isinstance(spec, dict) or query_key not in spec or item_key not in spec:
            raise ValueError(
                f"`dataset` must yield dicts with `{query_key}` and `{item_key}`, got {spec}."
            )
        pairs = dataset.map(lambda x: (x[query_key], x[item_key]))
        if spec[query_key].shape.rank == 0:
            pairs = pairs.batch(65536)
        queries, items = [], []
        for q, i in pairs.as_numpy_iterator():
            queries.append(q)
            items.append(i)
        return cls(np.concatenate(queries), np.concatenate(items))

    def get_config(self) -> Dict[str, Any]:
        """`KnownPositives(**config)` rebuilds the set."""
        return {"keys": self.keys.tolist()}

    def contains(self, query_ids: tf.Tensor, item_ids: tf.Tensor) -> tf.Tensor:
        """Whether each (query, item) pair (int64, broadcastable) is a known positive."""
        return self.table.lookup(pair_keys(query_ids, item_ids)) > 0


def pair_keys(query_ids: tf.Tensor, item_ids: tf.Tensor) -> tf.Tensor:
    """`query XOR rotate_left(item, 32)` of int64 ids (broadcasting)."""
    high = tf.bitwise.left_shift(item_ids, 32)
    low = tf.bitwise.bitwise_and(tf.bitwise.right_shift(item_ids, 32), 0xFFFFFFFF)
    return tf.bitwise.bitwise_xor(query_ids, tf.bitwise.bitwise_or(high, low))
