"""Negative subsampling of a logged-impressions dataset, deterministic per seed and example."""

from typing import Any, Callable, Dict, Optional

import tensorflow as tf


def _check_rate(rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(f"`rate` must be a number in (0, 1], got {type(rate).__name__}.")
    if not 0.0 < float(rate) <= 1.0:
        raise ValueError(f"`rate` must be in (0, 1], got {rate}.")
    return float(rate)


def _check_spec(dataset: tf.data.Dataset, label_key: str, id_key: Optional[str]) -> None:
    spec = dataset.element_spec
    if not isinstance(spec, dict):
        raise TypeError(
            "`dataset` must yield dicts of features (unbatched), got elements of "
            f"{type(spec).__name__}."
        )
    for name, key in (("label_key", label_key), ("id_key", id_key)):
        if key is not None and key not in spec:
            raise ValueError(
                f"`{name}`={key!r} is not a feature of the dataset; it has {sorted(spec)}."
            )
    if spec[label_key].shape.rank not in (0, None) and spec[label_key].shape != [1]:
        raise ValueError(
            f"`label_key`={label_key!r} must be a scalar (or [1]) per example: batch after "
            f"subsampling; got shape {spec[label_key].shape}."
        )


def _keep_uniform(seed: int, key: tf.Tensor) -> tf.Tensor:
    """One uniform in [0, 1) from a stateless Philox stream keyed by (seed, key)."""
    stateless_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(key, tf.int64)])
    return tf.random.stateless_uniform([], seed=stateless_seed, dtype=tf.float32)


def subsample_negatives(  # noqa: PLR0913 (the issue's arguments, then two key options)
    dataset: tf.data.Dataset,
    rate: float,
    label_key: str,
    seed: int = 0,
    weight_key: Optional[str] = None,
    id_key: Optional[str] = None,
    key_fn: Optional[Callable[[Dict[str, tf.Tensor]], tf.Tensor]] = None,
) -> tf.data.Dataset:
    """Keeps every positive and each negative with probability `rate`.

    The decision for an example is a stateless uniform seeded by `(seed, key)`, where the
    key is `key_fn(example)`, else `example[id_key]`, else the example's position in
    `dataset` (via `enumerate`). The same example is therefore kept in every epoch and
    every run. With `weight_key` the returned examples carry an importance weight
    (`1 / rate` on kept negatives, `1` on positives) for a weighted loss; otherwise correct
    the trained model with `PriorCorrection(rate)` (He et al. 2014).

    Args:
      dataset: unbatched dataset of feature dicts; `dataset[label_key]` is a scalar in {0, 1}.
      rate: keep probability of a negative, in (0, 1].
      label_key: the feature holding the click label.
      seed: integer seed of the subsample.
      weight_key: if given, the feature name the importance weight (float32 scalar) goes to.
      id_key: optional integer feature that identifies an example (stable under reordering).
      key_fn: optional callable from an example to an integer scalar key; wins over `id_key`.

    Returns:
      The subsampled dataset, same element structure (plus `weight_key`).

    Raises:
      TypeError / ValueError: bad `dataset`, `rate`, `label_key`, `id_key` or `seed`;
      `tf.errors.InvalidArgumentError` at iteration if a label is not 0 or 1.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"`dataset` must be a tf.data.Dataset, got {type(dataset).__name__}.")
    rate = _check_rate(rate)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__}.")
    if key_fn is not None and not callable(key_fn):
        raise TypeError(f"`key_fn` must be callable, got {type(key_fn).__name__}.")
    _check_spec(dataset, label_key, id_key)

    def decide(position: tf.Tensor, example: Dict[str, tf.Tensor]):
        label = tf.reshape(tf.cast(example[label_key], tf.float32), [])
        check = tf.debugging.assert_equal(
            tf.logical_or(tf.equal(label, 0.0), tf.equal(label, 1.0)),
            True,
            message=f"subsample_negatives: labels in `{label_key}` must be 0 or 1",
        )
        with tf.control_dependencies([check]):
            if key_fn is not None:
                key = tf.reshape(key_fn(example), [])
            elif id_key is not None:
                key = tf.reshape(example[id_key], [])
            else:
                key = position
            positive = label > 0.5
            kept = tf.logical_or(positive, _keep_uniform(seed, key) < rate)
        if weight_key is not None:
            example = dict(example)
            example[weight_key] = tf.where(positive, 1.0, 1.0 / rate)
        return kept, example

    return (
        dataset.enumerate()
        .map(decide, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .filter(lambda kept, example: kept)
        .map(lambda kept, example: example)
    )
