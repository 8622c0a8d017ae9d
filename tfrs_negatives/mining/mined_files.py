"""Reading the windows an offline mining job wrote (TFRecord of `tf.train.Example`).

Contract: each record holds `anchor` (one int64 or bytes id) and `negatives`
(an int64 or bytes id list in rank order, lengths may differ per record).
"""

from typing import List, Tuple

import numpy as np
import tensorflow as tf


def _ids(example: tf.train.Example, key: str, where: str) -> Tuple[str, list]:
    """`(kind, values)` of feature `key`; kind is "int" or "bytes"."""
    feature = example.features.feature
    if key not in feature:
        raise ValueError(f"{where} has no `{key}` feature (expected an int64 or bytes list).")
    which = feature[key].WhichOneof("kind")
    if which == "int64_list":
        return "int", list(feature[key].int64_list.value)
    if which == "bytes_list":
        return "bytes", list(feature[key].bytes_list.value)
    raise ValueError(f"{where}: `{key}` must be an int64 or bytes list, got {which}.")


def read_mined_windows(pattern: str) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Reads mined windows from TFRecord files matching `pattern` (a file or a glob).

    Args:
      pattern: Path or glob of TFRecord shards.

    Returns:
      `(anchors [A], windows)`: the anchor ids (int64 or bytes objects) in file
      order and, per anchor, its `[n_a]` negatives in rank order.

    Raises:
      ValueError: no file matches, a record lacks a field or has more than one
        anchor, id kinds are mixed, or an anchor appears twice.
    """
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"`pattern` matched no files: {pattern!r}.")
    anchors, windows, kind, seen = [], [], None, {}
    for path in files:
        for index, raw in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
            where = f"Record {index} of {path}"
            example = tf.train.Example.FromString(raw)
            anchor_kind, anchor = _ids(example, "anchor", where)
            negatives_kind, negatives = _ids(example, "negatives", where)
            if len(anchor) != 1:
                raise ValueError(f"{where}: `anchor` must hold one id, got {len(anchor)}.")
            if negatives and negatives_kind != anchor_kind:
                raise ValueError(f"{where}: `anchor` is {anchor_kind}, `negatives` "
                                 f"{negatives_kind}; ids must be of one kind.")
            kind = kind or anchor_kind
            if anchor_kind != kind:
                raise ValueError(f"{where}: {anchor_kind} ids after {kind} ids; "
                                 "ids must be of one kind.")
            if anchor[0] in seen:
                raise ValueError(f"{where}: anchor {anchor[0]!r} also in {seen[anchor[0]]}.")
            seen[anchor[0]] = where
            anchors.append(anchor[0])
            windows.append(np.array(negatives, np.int64 if kind == "int" else object))
    return np.array(anchors, np.int64 if kind == "int" else object), windows
