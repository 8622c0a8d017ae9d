"""The catalogue a metric ranks against: fixed `(ids, embeddings)`, a dataset, or an index.

`catalogue_source(candidates)` picks the adapter. Each one fixes the catalogue's ids
(their order, as int64: strings fingerprinted) at construction and gives the current
embeddings at every update (`read`), so a dataset mapped through the item tower follows
training. `PopularityStratifiedRecall` uses them; so can any metric over a catalogue.
"""

from typing import Any, List, Mapping, Optional, Tuple

from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

_CHANGED = (
    "`candidates` yielded other ids, rows or order than when the metric was built: "
    "the catalogue must be the same on every pass (do not shuffle it)."
)


def id_kind(dtype: tf.DType) -> str:
    """`"string"` or `"integer"`: ids of the two kinds never match each other."""
    return "string" if dtype == tf.string else "integer"


def ids_to_numpy(ids: Any, name: str) -> Tuple[np.ndarray, str]:
    """`[n]` int64 ids (strings fingerprinted) and their kind, from an array-like.

    Raises:
      TypeError: ids neither ints nor strings (`name` in the message).
    """
    if isinstance(ids, tf.Variable):
        ids = ids.read_value()
    if tf.is_tensor(ids):
        tensor = ids
    else:
        array = np.asarray(ids)
        if array.dtype.kind in "iu":
            array = array.astype(np.int64)
        elif array.dtype.kind in "US":
            array = array.astype(object)
        elif array.dtype.kind != "O":
            raise TypeError(f"`{name}` must hold int or string ids, got dtype {array.dtype}.")
        tensor = tf.constant(array.reshape(-1))
    tensor = tf.reshape(tensor, [-1])
    return to_int64_ids(tensor, name).numpy(), id_kind(tensor.dtype)


class CatalogueSource:
    """A catalogue's ids, fixed at construction; subclasses say how embeddings are read.

    Attributes:
      ids: `[N]` int64 catalogue ids (strings fingerprinted), in catalogue order.
      id_kind: `"integer"` or `"string"`, the kind of the ids given.
      num_items: `N`.
      dim: Embedding dimension `D`.
      fixed: `([N] ids, [N, D] float32 embeddings)` tensors when the catalogue is fixed
        (a config can hold it), else None.
    """

    fixed: Optional[Tuple[tf.Tensor, tf.Tensor]] = None

    def __init__(self, ids: Optional[Any], embeddings: tf.Tensor) -> None:
        if embeddings.shape.rank != 2 or embeddings.shape[1] is None:
            raise ValueError(
                "`candidates` must give embeddings of shape [num_items, D], got shape "
                f"{embeddings.shape}."
            )
        self.dim = int(embeddings.shape[1])
        self.num_items = int(embeddings.shape[0])
        if self.num_items == 0:
            raise ValueError("`candidates` is empty: the catalogue needs at least one item.")
        if ids is None:
            self.ids, self.id_kind = np.arange(self.num_items, dtype=np.int64), "integer"
        else:
            self.ids, self.id_kind = ids_to_numpy(ids, "candidates")
        if self.ids.size != self.num_items:
            raise ValueError(
                f"`candidates` must give one id per embedding row, got {self.ids.size} ids "
                f"and {self.num_items} rows."
            )
        sorted_ids = np.sort(self.ids)
        repeated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if repeated.size:
            raise ValueError(
                "`candidates` ids must be distinct; repeated (as int64 or fingerprint): "
                f"{np.unique(repeated)[:5].tolist()}."
            )
        self._ids_constant = tf.constant(self.ids, tf.int64)
        order = np.argsort(self.ids, kind="stable")
        self._sorted_ids = tf.constant(self.ids[order], tf.int64)
        self._sorted_positions = tf.constant(order, tf.int32)

    def check_ids(self, ids: Any, name: str) -> tf.Tensor:
        """`ids` as `[n]` int64, after checking they are of the catalogue's kind."""
        ids = tf.convert_to_tensor(ids)
        ids = tf.reshape(ids, [-1]) if ids.shape.rank == 2 and ids.shape[1] == 1 else ids
        if id_kind(ids.dtype) != self.id_kind:
            raise TypeError(
                f"`{name}` holds {ids.dtype.name} ids but the catalogue (`candidates`) has "
                f"{self.id_kind} ids: they would never match."
            )
        return to_int64_ids(ids, name)

    def rows(self, ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """`(rows, known)`: each int64 id's catalogue row (meaningful where `known`)."""
        order = np.argsort(self.ids, kind="stable")
        sorted_ids = self.ids[order]
        index = np.minimum(np.searchsorted(sorted_ids, ids), self.num_items - 1)
        return order[index], sorted_ids[index] == ids

    def positions(self, ids: tf.Tensor) -> tf.Tensor:
        """`[n]` int32 catalogue row of each int64 id (in graph), -1 for ids not in it."""
        index = tf.searchsorted(self._sorted_ids, ids, side="left", out_type=tf.int32)
        index = tf.minimum(index, self.num_items - 1)
        match = tf.equal(tf.gather(self._sorted_ids, index), ids)
        return tf.where(match, tf.gather(self._sorted_positions, index), -1)

    def read(self) -> Tuple[Optional[tf.Tensor], tf.Tensor]:
        """The catalogue's current `([N] int64 ids or None, [N, D] embeddings)`."""
        raise NotImplementedError

    def assert_same(self, ids: Optional[tf.Tensor], embeddings: tf.Tensor) -> List[tf.Operation]:
        """Ops checking that a pass yielded the construction-time ids, in order."""
        same = tf.equal(tf.shape(embeddings)[0], self.num_items)
        if ids is not None:
            same = tf.logical_and(same, tf.equal(tf.size(ids), self.num_items))
            same = tf.cond(
                same,
                lambda: tf.reduce_all(
                    tf.equal(tf.reshape(ids, [-1])[: self.num_items], self._ids_constant)
                ),
                lambda: tf.constant(False),
            )
        return [tf.debugging.Assert(same, [_CHANGED])]


class FixedCatalogue(CatalogueSource):
    """A pair `(ids, embeddings)` of arrays, fixed for the metric's life."""

    def __init__(self, candidates: Tuple[Any, Any]) -> None:
        ids = tf.reshape(tf.convert_to_tensor(candidates[0]), [-1])
        embeddings = tf.cast(tf.convert_to_tensor(candidates[1]), tf.float32)
        self.fixed = (ids, embeddings)
        super().__init__(ids, embeddings)

    def read(self) -> Tuple[Optional[tf.Tensor], tf.Tensor]:
        return None, self.fixed[1]

    def assert_same(self, ids: Optional[tf.Tensor], embeddings: tf.Tensor) -> List[tf.Operation]:
        return []


class DatasetCatalogue(CatalogueSource):
    """A `tf.data.Dataset` of `(ids, embeddings)` batches (or embeddings alone), read per update."""

    def __init__(self, dataset: tf.data.Dataset) -> None:
        self._dataset = _batched(dataset)
        self.has_ids = isinstance(self._dataset.element_spec, tuple)
        super().__init__(*_read_eagerly(self._dataset, self.has_ids))

    def read(self) -> Tuple[Optional[tf.Tensor], tf.Tensor]:
        """One pass as one batch (eagerly or in `tf.function`).

        Rebatched to `num_items + 1` rows so a catalogue that grew shows up as a size
        mismatch in `assert_same`.
        """
        element = self._dataset.rebatch(self.num_items + 1).take(1).get_single_element()
        if not self.has_ids:
            return None, tf.cast(element, tf.float32)
        ids = to_int64_ids(tf.reshape(element[0], [-1]), "candidates")
        return ids, tf.cast(element[1], tf.float32)


class IndexCatalogue(CatalogueSource):
    """A `tfrs.layers.factorized_top_k.BruteForce` index, read per update."""

    def __init__(self, index: tfrs.layers.factorized_top_k.BruteForce) -> None:
        if index._candidates is None:  # pylint: disable=protected-access
            raise ValueError(
                "`candidates` is a BruteForce index without candidates: call its `index` "
                "or `index_from_dataset` first."
            )
        self._index = index
        super().__init__(index._identifiers, index._candidates)  # pylint: disable=protected-access

    def read(self) -> Tuple[Optional[tf.Tensor], tf.Tensor]:
        return (
            to_int64_ids(self._index._identifiers, "candidates"),  # pylint: disable=protected-access
            tf.convert_to_tensor(self._index._candidates),  # pylint: disable=protected-access
        )


def catalogue_source(candidates: Any) -> CatalogueSource:
    """The adapter for `candidates` (see `PopularityStratifiedRecall`'s `candidates`).

    Args:
      candidates: A `tf.data.Dataset` of `(ids, embeddings)` batches (or embeddings
        alone: row positions are the ids; unbatched datasets are batched), a
        `BruteForce` or `Streaming` index, or a pair `(ids, embeddings)` of arrays.

    Raises:
      TypeError: another kind of `candidates`, or an index without exact embeddings.
      ValueError: an index without candidates, an empty catalogue, ids not one per
        row or not distinct.
    """
    layers = tfrs.layers.factorized_top_k
    if isinstance(candidates, layers.Streaming):
        if candidates._candidates is None:  # pylint: disable=protected-access
            raise ValueError(
                "`candidates` is a Streaming index without candidates: call its "
                "`index_from_dataset` first."
            )
        candidates = candidates._candidates  # pylint: disable=protected-access
    if isinstance(candidates, tf.data.Dataset):
        return DatasetCatalogue(candidates)
    if isinstance(candidates, layers.BruteForce):
        return IndexCatalogue(candidates)
    if isinstance(candidates, layers.TopK):
        raise TypeError(
            f"`candidates` must expose exact embeddings; {type(candidates).__name__} does "
            "not (e.g. ScaNN is approximate): pass the dataset of (id, embedding) batches "
            "you indexed it with, or a BruteForce index."
        )
    if isinstance(candidates, (tuple, list)) and len(candidates) == 2:
        return FixedCatalogue(candidates)
    raise TypeError(
        "`candidates` must be a tf.data.Dataset of (ids, embeddings) batches, a "
        "tfrs.layers.factorized_top_k BruteForce or Streaming index, or a pair "
        f"(ids, embeddings); got {type(candidates).__name__}."
    )


def aligned_counts(item_counts: Any, source: CatalogueSource) -> np.ndarray:
    """`[num_items]` float64 training counts in the catalogue's order.

    Args:
      item_counts: A `[num_items]` array in catalogue order, or a mapping of id to
        count (ids missing from it count 0; ids not in the catalogue are ignored).
      source: The catalogue.

    Raises:
      ValueError: empty, negative or non-finite counts, no catalogue key, zero total,
        or an array of another length.
      TypeError: mapping keys of the other id kind.
    """
    if isinstance(item_counts, Mapping):
        counts = _counts_from_mapping(item_counts, source)
    else:
        counts = _as_counts(item_counts)
        if counts.size != source.num_items:
            raise ValueError(
                f"`item_counts` must have one count per catalogue item ({source.num_items}, "
                f"in the order of `candidates`), got {counts.size}."
            )
    if not counts.sum() > 0:
        raise ValueError("`item_counts` must have a positive total, got 0.")
    return counts


def _counts_from_mapping(item_counts: Mapping, source: CatalogueSource) -> np.ndarray:
    if not item_counts:
        raise ValueError("`item_counts` is empty.")
    keys, kind = ids_to_numpy(list(item_counts.keys()), "item_counts")
    if kind != source.id_kind:
        raise TypeError(
            f"`item_counts` has {kind} keys but the catalogue (`candidates`) has "
            f"{source.id_kind} ids."
        )
    values = _as_counts(list(item_counts.values()))
    rows, known = source.rows(keys)
    if not known.any():
        raise ValueError(
            "`item_counts` has no key that is a catalogue id (`candidates`): check that "
            "both use the same ids."
        )
    counts = np.zeros(source.num_items, np.float64)
    np.add.at(counts, rows[known], values[known])
    return counts


def _as_counts(values: Any) -> np.ndarray:
    try:
        counts = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`item_counts` must hold numbers: {error}") from error
    bad = ~(np.isfinite(counts) & (counts >= 0))
    if bad.any():
        raise ValueError(
            "`item_counts` must be non-negative and finite; got "
            f"{counts[bad][:5].tolist()} at positions {np.flatnonzero(bad)[:5].tolist()}."
        )
    return counts


def _batched(dataset: tf.data.Dataset) -> tf.data.Dataset:
    spec = dataset.element_spec
    embedding_spec = spec[1] if isinstance(spec, tuple) and len(spec) == 2 else spec
    if isinstance(spec, tuple) and len(spec) != 2:
        raise ValueError(
            f"`candidates` must yield embeddings or (ids, embeddings) tuples, got elements {spec}."
        )
    if not isinstance(embedding_spec, tf.TensorSpec):
        raise TypeError(f"`candidates` must yield tensors, got elements {spec}.")
    if embedding_spec.shape.rank == 1:
        return dataset.batch(1024)
    return dataset


def _read_eagerly(dataset: tf.data.Dataset, has_ids: bool):
    ids, embeddings = [], []
    for element in dataset:
        if has_ids:
            ids.append(tf.reshape(element[0], [-1]))
            embeddings.append(element[1])
        else:
            embeddings.append(element)
    if not embeddings:
        raise ValueError("`candidates` is empty: the catalogue needs at least one item.")
    return (tf.concat(ids, 0) if has_ids else None), tf.concat(embeddings, 0)


def plain_values(values: Any) -> list:
    """Nested lists of a tensor or array, bytes decoded to str (JSON-safe)."""
    array = values.numpy() if tf.is_tensor(values) else np.asarray(values)
    if array.dtype.kind in "iu":
        array = array.astype(np.int64)
    elif array.dtype.kind == "f":
        array = array.astype(np.float64)
    return _decode(array.tolist())


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value.decode("utf-8") if isinstance(value, bytes) else value
