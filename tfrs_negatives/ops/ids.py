"""Candidate ids as 64-bit integers: the form every comparison in the hot path uses."""

import tensorflow as tf

_INTEGER_DTYPES = (tf.int32, tf.int64)


def to_int64_ids(ids: tf.Tensor, name: str = "ids") -> tf.Tensor:
    """Converts ids to a rank-1 `int64` tensor.

    Integer ids are cast; string ids are replaced by their 64-bit FarmHash
    fingerprint (`tf.fingerprint`), computed once here so that later comparisons
    and hashes work on integers. Two distinct strings share a fingerprint with
    probability about `n^2 / 2^65` for `n` distinct strings (negligible).

    Args:
      ids: `[n]` tensor of `int32`, `int64` or `string` ids.
      name: Name of the caller's argument, used in error messages.

    Returns:
      `[n]` `int64` tensor.

    Raises:
      TypeError: `ids` is not an integer or string tensor.
      ValueError: `ids` is not rank 1.
    """
    if ids is None:
        raise ValueError(f"`{name}` is required: expected a rank-1 tensor of ids, got None.")
    ids = tf.convert_to_tensor(ids)
    if ids.shape.rank is not None and ids.shape.rank != 1:
        raise ValueError(
            f"`{name}` must be a rank-1 tensor of ids of shape [n], got shape {ids.shape}."
        )
    if ids.dtype == tf.string:
        return fingerprint64(ids)
    if ids.dtype in _INTEGER_DTYPES:
        return tf.cast(ids, tf.int64)
    raise TypeError(f"`{name}` must hold int32, int64 or string ids, got dtype {ids.dtype.name}.")


def fingerprint64(strings: tf.Tensor) -> tf.Tensor:
    """64-bit FarmHash fingerprints of a `[n]` string tensor, as `[n]` `int64`."""
    bytes_ = tf.fingerprint(strings, method="farmhash64")  # [n, 8] uint8
    return tf.reshape(tf.bitcast(bytes_, tf.int64), [-1])
