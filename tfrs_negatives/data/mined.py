"""Each training example's mined negatives as a feature, from what `tfrs-negatives mine` wrote."""

from typing import Any, List, Optional, Tuple, Union

from tfrs_negatives.mining.mined_files import read_mined_windows, window_width
from tfrs_negatives.negatives.from_features import INT_PADDING, STRING_PADDING
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf

Windows = Tuple[np.ndarray, List[np.ndarray]]


def padded_windows(windows: List[np.ndarray], width: int, strings: bool) -> np.ndarray:
    """`[A + 1, width]` ids: each window padded at the end, then a padding row (unknown anchors)."""
    padding = STRING_PADDING if strings else INT_PADDING
    matrix = np.full([len(windows) + 1, width], padding, object if strings else np.int64)
    for row, window in enumerate(windows):
        matrix[row, : len(window)] = window
    return matrix


def with_mined_negatives(
    dataset: tf.data.Dataset,
    mined: Union[str, Windows],
    anchor_key: str,
    output_key: str = "mined_negatives",
    width: Optional[int] = None,
) -> tf.data.Dataset:
    """Adds each example's mined window (`[..., width]` ids) to its features.

    The windows are looked up by the example's anchor (its positive item's id for
    item-side mining, its query id for query-side) in a table held by the input
    pipeline, not the model; pass the feature to the task as `negative_ids` and read
    it with a `negatives.FromFeatures` source. Anchors that were not mined get a row
    of padding (-1 or ""), on which `FromFeatures` falls back to uniform negatives.
    The table is part of the dataset's graph (about 8 bytes per id): for windows of
    more than some 10^7 ids, join them to the examples offline instead.

    Args:
      dataset: Dataset of feature dicts, batched or not.
      mined: A path or glob of mined TFRecord files, or `(anchors, windows)` as
        `tfrs_negatives.mining.read_mined_windows` returns them.
      anchor_key: The feature holding each example's anchor id.
      output_key: The feature added.
      width: Ids per example (default: the longest window); a longer window is an
        error, never truncated.

    Returns:
      The dataset with `output_key` of shape `anchor.shape + [width]`.
    """
    anchors, windows = read_mined_windows(mined) if isinstance(mined, str) else mined
    width = window_width(list(windows), width)
    strings = np.asarray(anchors).dtype == object
    matrix = tf.constant(padded_windows(list(windows), width, strings))
    keys = to_int64_ids(tf.constant(anchors), "anchors")
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(anchors), dtype=tf.int64)),
        default_value=len(anchors),
    )
    spec = dataset.element_spec
    if not isinstance(spec, dict) or anchor_key not in spec:
        present = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"`anchor_key` {anchor_key!r} is not a feature of `dataset`: {present}.")
    if output_key in spec:
        raise ValueError(f"`output_key` {output_key!r} is already a feature of `dataset`.")
    if (spec[anchor_key].dtype == tf.string) != strings:
        raise TypeError(
            f"`{anchor_key}` holds {spec[anchor_key].dtype.name} ids but the mined anchors are "
            f"{'strings' if strings else 'integers'}."
        )

    def add(features: Any) -> Any:
        anchor = features[anchor_key]
        rows = table.lookup(to_int64_ids(tf.reshape(anchor, [-1]), anchor_key))
        values = tf.gather(matrix, rows)
        shape = tf.concat([tf.shape(anchor), [width]], 0)
        return {**features, output_key: tf.reshape(values, shape)}

    return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
