"""`KnownPositives`: the (query, item) pairs seen as positives, queried in the training step."""

from typing import Any, Dict, Optional

from tfrs_negatives.ops.id_kind import check_id_kind, checked_id_kind, id_kind
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf


class KnownPositives(tf.Module):
    """The set of (query, item) pairs seen as positives, queried in-graph.

    Keys combine the two int64 ids (strings fingerprinted) as
    `query XOR rotate_left(item, 32)`: exact for ids below 2^32, and for
    fingerprints a collision is as unlikely as a 64-bit hash collision. The set
    remembers the kind (int or string) of its query and item ids; `check_ids`
    rejects the other kind, which would never match.

    Args:
      query_ids: `[n]` query ids of the positive pairs (int or string).
      item_ids: `[n]` item ids, one per query id.
      keys: Instead of the ids, the pair keys of a config.
      query_id_kind: Kind of the query ids (`"int"`/`"string"`); inferred from
        `query_ids`, given with `keys`.
      item_id_kind: Kind of the item ids, likewise.
      name: Name of the module.

    Raises:
      ValueError: neither ids nor keys, ids of different lengths, no pair, or a
        kind that contradicts the ids.
    """

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        query_ids: Any = None,
        item_ids: Any = None,
        keys: Any = None,
        name: Optional[str] = None,
        query_id_kind: Optional[str] = None,
        item_id_kind: Optional[str] = None,
    ) -> None:
        super().__init__(name=name)
        self.query_id_kind = checked_id_kind(query_id_kind, "query_id_kind")
        self.item_id_kind = checked_id_kind(item_id_kind, "item_id_kind")
        if keys is None:
            if query_ids is None or item_ids is None:
                raise ValueError("Give `query_ids` and `item_ids` (or the `keys` of a config).")
            self.query_id_kind = _kind_of(query_ids, self.query_id_kind, "query_ids")
            self.item_id_kind = _kind_of(item_ids, self.item_id_kind, "item_ids")
            keys = _pair_keys_of(query_ids, item_ids).numpy()
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
        return {
            "keys": self.keys.tolist(),
            "query_id_kind": self.query_id_kind,
            "item_id_kind": self.item_id_kind,
        }

    def check_ids(self, query_ids: Any = None, item_ids: Any = None) -> None:
        """Raises if raw `query_ids` or `item_ids` are not of the kind the set was built on.

        Args:
          query_ids: Optional `[n]` query ids as the task receives them.
          item_ids: Optional `[n]` item (candidate) ids.

        Raises:
          TypeError: ids of the other kind (string for int, or the reverse).
        """
        if query_ids is not None:
            check_id_kind(query_ids, self.query_id_kind, "query_ids", "the KnownPositives")
        if item_ids is not None:
            check_id_kind(item_ids, self.item_id_kind, "item_ids", "the KnownPositives")

    def contains(self, query_ids: tf.Tensor, item_ids: tf.Tensor) -> tf.Tensor:
        """Whether each (query, item) pair (int64, broadcastable) is a known positive."""
        return self.table.lookup(pair_keys(query_ids, item_ids)) > 0


def pair_keys(query_ids: tf.Tensor, item_ids: tf.Tensor) -> tf.Tensor:
    """`query XOR rotate_left(item, 32)` of int64 ids (broadcasting)."""
    high = tf.bitwise.left_shift(item_ids, 32)
    low = tf.bitwise.bitwise_and(tf.bitwise.right_shift(item_ids, 32), 0xFFFFFFFF)
    return tf.bitwise.bitwise_xor(query_ids, tf.bitwise.bitwise_or(high, low))


def _kind_of(ids: Any, given: Optional[str], name: str) -> str:
    """The kind of `ids`, which must agree with `given` (the `<name>_kind` argument)."""
    kind = id_kind(ids, name)
    if given is not None and given != kind:
        raise ValueError(f"`{name}_kind` is {given!r} but `{name}` are {kind} ids.")
    return kind


def _pair_keys_of(query_ids: Any, item_ids: Any) -> tf.Tensor:
    """`[n]` keys of `n` pairs; the two lists must be of one length."""
    queries = to_int64_ids(query_ids, "query_ids")
    items = to_int64_ids(item_ids, "item_ids")
    if queries.shape[0] != items.shape[0]:
        raise ValueError(
            "`query_ids` and `item_ids` must have the same length (the i-th query and the "
            f"i-th item form a pair), got {queries.shape[0]} query ids and {items.shape[0]} "
            "item ids."
        )
    return pair_keys(queries, items)
