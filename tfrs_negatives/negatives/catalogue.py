"""`Catalogue`: every candidate that negatives can be drawn from, as the candidate tower eats it."""

import hashlib
from typing import Any, Dict, Optional

from tfrs_negatives.ops.id_kind import check_id_kind, id_kind
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf


class Catalogue:
    """The candidates negatives are drawn from: their ids and the features of each.

    Ids identify candidates (for accidental hits, duplicates and sampling
    probabilities; compared as int64, strings fingerprinted); `features` are what
    the candidate tower is called with (by default the ids themselves, e.g. the
    titles a `StringLookup` tower takes). The catalogue is data, not training
    state: it is held in tensors, not variables, and is not checkpointed.

    A catalogue remembers the kind of its ids (`id_kind`: `"int"` or `"string"`);
    whoever looks raw ids up in it calls `check_ids` first, so ids of the other
    kind (which would never match) are an error, not a silent miss.

    Args:
      ids: `[N]` distinct int32/int64/string ids.
      features: Optional `[N, ...]` tensor or dict of them, fed to the candidate
        tower for the sampled rows; defaults to `ids`.

    Raises:
      ValueError: empty catalogue, repeated ids, or features of another length.

    Attributes:
      id_kind: `"int"` or `"string"`, the kind of `ids`.
      size: Number of candidates `N`.
    """

    def __init__(self, ids: Any, features: Optional[Any] = None) -> None:
        ids = tf.convert_to_tensor(ids)
        if ids.shape.rank != 1 or ids.shape[0] == 0:
            raise ValueError(
                f"`ids` of a Catalogue must be a non-empty rank-1 tensor, got shape {ids.shape}."
            )
        self.raw_ids = ids
        self.id_kind = id_kind(ids, "ids")
        self.ids = to_int64_ids(ids, "ids")
        self.size = int(ids.shape[0])
        order = np.argsort(self.ids.numpy(), kind="stable")
        sorted_ids = self.ids.numpy()[order]
        repeated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if repeated.size:
            raise ValueError(
                f"`ids` of a Catalogue must be distinct; {repeated.size} repeat (as int64 or "
                f"fingerprint), e.g. {repeated[:3].tolist()}."
            )
        self.sorted_ids = tf.constant(sorted_ids)
        self.sorted_order = tf.constant(order.astype(np.int64))
        if features is None:
            self.features = ids
        elif isinstance(features, dict):
            self.features = {k: tf.convert_to_tensor(v) for k, v in features.items()}
        else:
            self.features = tf.convert_to_tensor(features)
        for leaf in tf.nest.flatten(self.features):
            if leaf.shape.rank == 0 or leaf.shape[0] != self.size:
                raise ValueError(
                    f"`features` of a Catalogue must have {self.size} rows (one per id), got a "
                    f"tensor of shape {leaf.shape}."
                )
        self._features_given = features is not None
        self._fingerprint: Optional[str] = None

    @property
    def fingerprint(self) -> str:
        """Order-sensitive digest of the int64 ids (16 hex digits): equal for equal catalogues.

        Two catalogues with the same ids in another order, or a subset, have
        different fingerprints; a table of catalogue rows records it to recognise
        the catalogue its rows index.
        """
        if self._fingerprint is None:
            data = self.ids.numpy().astype("<i8").tobytes()
            self._fingerprint = hashlib.sha256(data).hexdigest()[:16]
        return self._fingerprint

    def check_ids(self, ids: Any, name: str = "ids", owner: Optional[str] = None) -> None:
        """Raises if `ids` (raw, before `to_int64_ids`) are not of this catalogue's kind.

        A dtype check, free at trace time; call it on the ids a user passes before
        converting them for `lookup`.

        Args:
          ids: `[n]` int or string ids (tensor, array or list).
          name: The argument they came in, for the error (e.g. `"candidate_ids"`).
          owner: What holds the catalogue, for the error (e.g. "Uniform `uniform`").

        Raises:
          TypeError: string ids for a catalogue of int ids, or the reverse, e.g.
            "`candidate_ids` are strings but the Catalogue of Uniform `uniform` was
            built on int ids (int32/int64) ...".
        """
        what = "the Catalogue" if owner is None else f"the Catalogue of {owner}"
        check_id_kind(ids, self.id_kind, name, what)

    @classmethod
    def from_lookup(cls, lookup: tf.keras.layers.Layer) -> "Catalogue":
        """The vocabulary of a `StringLookup`/`IntegerLookup` layer, without OOV/mask tokens."""
        if not hasattr(lookup, "get_vocabulary"):
            raise TypeError(
                "`lookup` must be a Keras StringLookup or IntegerLookup layer, got "
                f"{type(lookup).__name__}."
            )
        vocabulary = lookup.get_vocabulary(include_special_tokens=False)
        return cls(tf.constant(vocabulary))

    @classmethod
    def from_dataset(cls, dataset: tf.data.Dataset, id_key: Optional[str] = None) -> "Catalogue":
        """Reads a dataset of candidates (as TFRS users hold it) in one pass.

        Args:
          dataset: Unbatched `tf.data.Dataset` whose elements are ids (scalars) or
            dicts of candidate features.
          id_key: For dict elements, the feature holding the id; the dicts are the
            features the candidate tower is called with.

        Returns:
          A `Catalogue`.
        """
        spec = dataset.element_spec
        if isinstance(spec, dict):
            if id_key is None or id_key not in spec:
                raise ValueError(
                    f"`id_key` must name the id feature of the dataset's dict elements "
                    f"{sorted(spec)}, got {id_key!r}."
                )
        elif not isinstance(spec, tf.TensorSpec) or spec.shape.rank != 0:
            raise ValueError(
                "`dataset` must yield scalar ids or dicts of features (unbatched), got "
                f"element spec {spec}."
            )
        rows = list(dataset.batch(65536).as_numpy_iterator())
        if not rows:
            raise ValueError("`dataset` holds no candidates: the catalogue would be empty.")
        if isinstance(spec, dict):
            features = {k: np.concatenate([r[k] for r in rows]) for k in spec}
            return cls(features[id_key], features)
        return cls(np.concatenate(rows))

    def lookup(self, ids: tf.Tensor) -> tuple:
        """Positions of `[n]` int64 ids in the catalogue and whether each is in it.

        Returns:
          `(index [n] int64, found [n] bool)`; `index` is 0 where not found.
        """
        position = tf.searchsorted(self.sorted_ids, ids, side="left", out_type=tf.int64)
        position = tf.minimum(position, self.size - 1)
        found = tf.equal(tf.gather(self.sorted_ids, position), ids)
        index = tf.where(found, tf.gather(self.sorted_order, position), tf.zeros_like(position))
        return index, found

    def gather(self, indices: tf.Tensor) -> tuple:
        """`(ids [k] int64, features [k, ...])` of catalogue rows `indices`."""
        features = tf.nest.map_structure(lambda t: tf.gather(t, indices), self.features)
        return tf.gather(self.ids, indices), features

    def get_config(self) -> Dict[str, Any]:
        """Plain-Python description (`Catalogue(**config)` rebuilds it); strings as str."""

        def plain(t: tf.Tensor) -> list:
            return _decode(t.numpy().tolist())

        return {
            "ids": plain(self.raw_ids),
            "features": tf.nest.map_structure(plain, self.features)
            if self._features_given
            else None,
        }


def _decode(value: Any) -> Any:
    """Nested lists with bytes turned into str (JSON-safe; tf.constant re-encodes)."""
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value.decode("utf-8") if isinstance(value, bytes) else value
