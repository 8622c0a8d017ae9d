"""The kind of a tensor of ids (int or string), and the check that a call keeps to one kind.

A catalogue or an estimator built on int ids compares int64 values; one built on
string ids compares their 64-bit fingerprints (`to_int64_ids`). Called with ids of
the other kind, nothing would match: accidental hits would stay unmasked and every
`q` would read as "never seen". Each such object therefore remembers the kind of
ids it was built on, and `check_id_kind` rejects the other kind by dtype (at trace
time: no cost in the step).
"""

from typing import Any, Optional

import numpy as np
import tensorflow as tf

#: Ids of dtype int32 or int64.
INT = "int"
#: Ids of dtype string (compared through their fingerprints).
STRING = "string"
ID_KINDS = (INT, STRING)

_DESCRIPTIONS = {INT: "int ids (int32/int64)", STRING: "string ids"}
_PLURALS = {INT: "ints", STRING: "strings"}


def id_kind_of_dtype(dtype: Any, name: str = "ids") -> str:
    """`"int"` for an int32/int64 dtype, `"string"` for a string dtype.

    Args:
      dtype: A `tf.DType`, NumPy dtype or anything `tf.as_dtype` takes.
      name: Name of the caller's argument, for the error.

    Raises:
      TypeError: any other dtype.
    """
    dtype = tf.as_dtype(dtype)
    if dtype == tf.string:
        return STRING
    if dtype in (tf.int32, tf.int64):
        return INT
    raise TypeError(f"`{name}` must hold int32, int64 or string ids, got dtype {dtype.name}.")


def id_kind(ids: Any, name: str = "ids") -> str:
    """The kind of `ids` (a tensor, symbolic or eager, an array or a list): `"int"` or `"string"`.

    Raises:
      TypeError: ids that are neither integers nor strings.
    """
    dtype = getattr(ids, "dtype", None)
    if isinstance(dtype, tf.DType):  # tensors, variables, specs, Keras tensors
        return id_kind_of_dtype(dtype, name)
    values = np.asarray(ids)
    if values.dtype.kind in "SU":
        return STRING
    if values.dtype.kind == "O" and values.size and isinstance(values.flat[0], (str, bytes)):
        return STRING
    if values.dtype.kind in "iu":
        return INT
    raise TypeError(
        f"`{name}` must hold int32, int64 or string ids, got NumPy dtype {values.dtype}."
    )


def checked_id_kind(kind: Optional[str], name: str = "id_kind") -> Optional[str]:
    """`kind` if it is None, `"int"` or `"string"`; raises ValueError otherwise."""
    if kind is not None and kind not in ID_KINDS:
        raise ValueError(f"`{name}` must be 'int', 'string' or None, got {kind!r}.")
    return kind


def check_id_kind(ids: Any, expected: Optional[str], name: str, owner: str) -> str:
    """Checks that `ids` are of the kind `owner` was built on; returns their kind.

    Args:
      ids: `[n]` ids (tensor, array or list).
      expected: `"int"`, `"string"`, or None (not known yet: any kind passes).
      name: Name of the argument holding `ids`, e.g. `"candidate_ids"`.
      owner: What was built on `expected` ids, e.g. "the Catalogue of Uniform
        `uniform`".

    Returns:
      The kind of `ids`.

    Raises:
      TypeError: `ids` are of the other kind (or neither int nor string).
    """
    kind = id_kind(ids, name)
    if expected is not None and kind != expected:
        raise TypeError(
            f"`{name}` are {_PLURALS[kind]} but {owner} was built on {_DESCRIPTIONS[expected]}: "
            "the two kinds never match (no id would be found: accidental hits would stay "
            f"unmasked, probabilities read as never seen). Pass {_DESCRIPTIONS[expected]}, "
            f"or build it on {_DESCRIPTIONS[kind]}."
        )
    return kind
