"""Reading the windows an offline mining job wrote (TFRecord of `tf.train.Example`).

Contract: each record holds `anchor` (one int64 or bytes id) and `negatives`
(an int64 or bytes id list in rank order, lengths may differ per record).
"""

from typing import Any, List, Optional, Tuple

from tfrs_negatives._files import matching_files
from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.negatives.hard_negative_table import HardNegativeTable
from tfrs_negatives.negatives.sources import as_catalogue
from tfrs_negatives.ops.ids import to_int64_ids

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
      FileNotFoundError: no file matches.
      ValueError: a record lacks a field or has more than one anchor, id kinds are
        mixed, or an anchor appears twice.
    """
    files = matching_files(pattern, "pattern")
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


def window_width(windows: List[np.ndarray], width: Optional[int], name: str = "width") -> int:
    """The width that holds every window: `width` if given (never truncating), else the longest."""
    longest = max((len(w) for w in windows), default=0)
    if width is None:
        if longest == 0:
            raise ValueError("The mined windows are all empty: nothing to train on.")
        return longest
    if int(width) < 1 or longest > int(width):
        raise ValueError(
            f"`{name}` must be >= 1 and hold the longest mined window ({longest} ids), got "
            f"{width!r}: windows are never truncated silently."
        )
    return int(width)


def catalogue_rows(catalogue: Catalogue, ids: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Catalogue rows of mined negative `ids` (`anchors[i]` the anchor of `ids[i]`, for errors)."""
    if ids.size == 0:
        return np.zeros([0], np.int64)
    catalogue.check_ids(ids, "the mined negatives")
    rows, found = (t.numpy() for t in catalogue.lookup(to_int64_ids(tf.constant(ids))))
    if not found.all():
        missing = np.flatnonzero(~found)[:3]
        examples = ", ".join(f"{ids[i]!r} (anchor {anchors[i]!r})" for i in missing)
        raise ValueError(
            f"{int((~found).sum())} mined negatives are not in the catalogue, e.g. {examples}: "
            "were they mined over another catalogue?"
        )
    return rows


def load_mined_table(
    pattern: str, catalogue: Any, window: Optional[int] = None, name: Optional[str] = None
) -> HardNegativeTable:
    """A `HardNegativeTable` holding the windows a mining job wrote (`tfrs-negatives mine`).

    Args:
      pattern: Path or glob of the mined TFRecord files.
      catalogue: The catalogue the negatives' ids are looked up in (a `Catalogue` or
        its ids): the one the `Mined` source reading the table draws from.
      window: The table's width (default: the longest window); a longer window is
        an error, never truncated.
      name: Optional layer name of the table.

    Returns:
      The table, bound to `catalogue`, one row per mined anchor (shorter windows
      padded, their `counts` the valid length).

    Raises:
      ValueError: a negative not in the catalogue, or a window longer than `window`.
    """
    catalogue = as_catalogue(catalogue)
    anchors, windows = read_mined_windows(pattern)
    width = window_width(windows, window, "window")
    lengths = np.array([len(w) for w in windows], np.int64)
    flat = np.concatenate(windows) if windows else np.zeros([0], np.int64)
    rows = catalogue_rows(catalogue, flat, np.repeat(anchors, lengths))
    neighbours = np.full([len(anchors), width], -1, np.int64)
    neighbours[np.arange(width)[None, :] < lengths[:, None]] = rows
    table = HardNegativeTable(anchors, width, name=name)
    table.assign(neighbours, lengths, catalogue)
    return table
