"""Reading what the offline (Beam) jobs write, without needing Beam: item counts.

The counts file holds `tf.train.Example` records `id` (int64 or bytes) and `count`
(float); `tfrs-negatives count` writes it.
"""

from typing import Any, Tuple

from tfrs_negatives._files import matching_files

import numpy as np
import tensorflow as tf

#: The shard suffix of the single counts file `tfrs-negatives count` writes.
COUNTS_SUFFIX = "-00000-of-00001"

_COUNT_FEATURES = {"count": tf.io.FixedLenFeature([], tf.float32)}


def load_counts(pattern: str) -> Tuple[np.ndarray, np.ndarray]:
    """Ids and counts of a counts file, for `ExactFrequencyEstimator(ids, counts)`.

    Args:
      pattern: The file `tfrs-negatives count` wrote (or a glob of such files).

    Returns:
      `[V]` ids (int64, or object array of bytes) and `[V]` float64 counts, sorted by id.

    Raises:
      FileNotFoundError: nothing matches `pattern`.
      ValueError: a record without `id`/`count`, or an id counted twice.
    """
    ids, counts = [], []
    for path in matching_files(pattern, "pattern"):
        for index, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
            example = tf.train.Example.FromString(record)
            feature = example.features.feature
            kind = feature["id"].WhichOneof("kind") if "id" in feature else None
            if kind not in ("int64_list", "bytes_list") or "count" not in feature:
                raise ValueError(f"{path}: record {index} has no `id` or no `count`.")
            ids.append(getattr(feature["id"], kind).value[0])
            counts.append(feature["count"].float_list.value[0])
    ids_array = _id_array(ids, pattern)
    order = np.argsort(ids_array, kind="stable")
    ids_array, counts_array = ids_array[order], np.asarray(counts, np.float64)[order]
    repeated = ids_array[1:][ids_array[1:] == ids_array[:-1]]
    if repeated.size:
        raise ValueError(f"{pattern}: ids counted twice, e.g. {repeated[:3].tolist()}.")
    return ids_array, counts_array


def counts_for(catalogue_ids: Any, pattern: str) -> np.ndarray:
    """`[N]` counts aligned with `catalogue_ids` (0 where absent), for `Popularity(counts=...)`."""
    ids, counts = load_counts(pattern)
    catalogue = _id_array(list(np.asarray(catalogue_ids).reshape(-1)), "catalogue_ids")
    if ids.dtype != catalogue.dtype:
        raise ValueError(
            f"`catalogue_ids` are {catalogue.dtype} ids, the counts file's are {ids.dtype}."
        )
    at = np.clip(np.searchsorted(ids, catalogue), 0, len(ids) - 1)
    return np.where(ids[at] == catalogue, counts[at], 0.0)


def _id_array(ids: list, source: str) -> np.ndarray:
    kinds = {isinstance(i, (bytes, np.bytes_, str)) for i in ids}
    if len(kinds) > 1:
        raise ValueError(f"{source}: ids mix int64 and bytes.")
    if kinds == {True}:
        return np.asarray([i.encode() if isinstance(i, str) else bytes(i) for i in ids], object)
    return np.asarray(ids, np.int64)
