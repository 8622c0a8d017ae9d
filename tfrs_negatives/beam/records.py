"""`tf.train.Example` records of the Beam file contract: parsing with errors that name the file."""

from typing import Any, List, NamedTuple, Sequence, Tuple, Union

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2

Id = Union[int, bytes]


class Embedded(NamedTuple):
    """One catalogue item or anchor: its id, embedding and excluded ids."""

    id: Id
    embedding: np.ndarray
    exclude: Tuple[Id, ...]


def _feature(example: Any, key: str, source: str, required: bool = True):
    features = example.features.feature
    if key not in features or features[key].WhichOneof("kind") is None:
        if not required:
            return None
        raise ValueError(
            f"{source}: a record has no feature {key!r} (features present: "
            f"{sorted(features.keys())})."
        )
    return features[key]


def feature_ids(feature: Any, key: str, source: str) -> List[Id]:
    """The int64 or bytes values of `feature`; other kinds raise, naming `key` and `source`."""
    kind = feature.WhichOneof("kind")
    if kind == "int64_list":
        return list(feature.int64_list.value)
    if kind == "bytes_list":
        return list(feature.bytes_list.value)
    raise ValueError(f"{source}: feature {key!r} must hold int64 or bytes ids, got {kind}.")


def single_id(example: Any, key: str, source: str) -> Id:
    """The one id under `key` of `example`."""
    ids = feature_ids(_feature(example, key, source), key, source)
    if len(ids) != 1:
        raise ValueError(f"{source}: feature {key!r} must hold exactly one id, got {len(ids)}.")
    return ids[0]


def parse_embedded(record: bytes, source: str, with_exclude: bool = False) -> Embedded:
    """Parses a catalogue or anchor record.

    Args:
      record: A serialized `tf.train.Example`.
      source: The file it came from, for error messages.
      with_exclude: Read the optional `exclude` id list (anchors).

    Returns:
      The record's id, its `[D]` float32 embedding and its excluded ids.

    Raises:
      ValueError: a missing `id` or `embedding`, or an empty or non-finite embedding.
    """
    example = example_pb2.Example.FromString(record)
    item_id = single_id(example, "id", source)
    embedding_feature = _feature(example, "embedding", source)
    if embedding_feature.WhichOneof("kind") != "float_list":
        raise ValueError(f"{source}: record {item_id!r}: `embedding` must be a float list.")
    embedding = np.asarray(embedding_feature.float_list.value, np.float32)
    if embedding.size == 0 or not np.all(np.isfinite(embedding)):
        raise ValueError(
            f"{source}: record {item_id!r}: `embedding` must be non-empty and finite, "
            f"got {embedding.size} values."
        )
    exclude: Sequence[Id] = ()
    if with_exclude:
        feature = _feature(example, "exclude", source, required=False)
        exclude = () if feature is None else feature_ids(feature, "exclude", source)
    return Embedded(item_id, embedding, tuple(exclude))


def id_feature(ids: Sequence[Id]) -> Any:
    """A `tf.train.Feature` holding `ids` (all int or all bytes)."""
    if all(isinstance(i, bytes) for i in ids):
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=list(ids)))
    return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[int(i) for i in ids]))


def example_bytes(**features: Sequence[Id]) -> bytes:
    """A serialized `tf.train.Example` of id-list features."""
    example = example_pb2.Example()
    for key, ids in features.items():
        example.features.feature[key].CopyFrom(id_feature(ids))
    return example.SerializeToString()


def id_kind(item_id: Id) -> str:
    """`"bytes"` or `"int"`."""
    return "bytes" if isinstance(item_id, bytes) else "int"


def check_one_kind(kinds: Sequence[str], what: str) -> None:
    """Raises if the distinct `kinds` (of `id_kind`) of `what` are more than one."""
    if len(set(kinds)) > 1:
        raise ValueError(f"{what} mix int64 and bytes ids; use one kind throughout.")
