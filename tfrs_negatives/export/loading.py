"""Loading an exported retrieval model: ScaNN's ops first when the model needs them."""

import json
import os
from typing import Any, Dict

from tfrs_negatives.scann_config import import_scann_ops

import tensorflow as tf

# Written beside the model by `save_retrieval`. `assets.extra/` is the SavedModel
# directory TensorFlow Serving reserves for files that are not loaded with the graph.
METADATA_FILE = os.path.join("assets.extra", "tfrs_negatives_export.json")
SCANN_OP_PREFIX = "Scann>"


def read_metadata(path: str) -> Dict[str, Any]:
    """The description `save_retrieval` wrote beside the model; `{}` for other SavedModels."""
    file = os.path.join(path, METADATA_FILE)
    if not os.path.exists(file):
        return {}
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def saved_model_op_types(path: str) -> set:
    """Every op type in the SavedModel's graphs and function library (read from the proto)."""
    from tensorflow.core.protobuf import saved_model_pb2  # noqa: PLC0415

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def needs_scann(path: str) -> bool:
    """Whether the SavedModel at `path` uses ScaNN's ops (`Scann>...`)."""
    if read_metadata(path).get("index") == "scann":
        return True
    return any(op.startswith(SCANN_OP_PREFIX) for op in saved_model_op_types(path))


def load_retrieval(path: str) -> Any:
    """Loads a model written by `save_retrieval` (or any SavedModel), ScaNN ops included.

    A SavedModel holding a ScaNN index cannot be loaded until ScaNN has registered its
    ops in the process (else TensorFlow fails with `Op type not registered
    'Scann>...'`). This reads the model's op types, imports ScaNN's ops when any is
    `Scann>...`, then calls `tf.saved_model.load`. An exact export loads without ScaNN
    (and with plain `tf.saved_model.load`).

    Args:
      path: Directory of the SavedModel.

    Returns:
      The loaded object: `obj.signatures["serving_default"](**inputs)` and
      `obj.serve(inputs_dict)` return `{"ids": [B, k], "scores": [B, k]}`; `obj.metadata`
      is the export's description (index, k, inputs, empty-slot values; `{}` for a
      SavedModel not written by `save_retrieval`).

    Raises:
      FileNotFoundError: `path` is not a SavedModel directory.
      ImportError: the model needs ScaNN's ops and they cannot be loaded (names the
        install command).
    """
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise FileNotFoundError(
            f"`path` must be a SavedModel directory (holding saved_model.pb), got {path!r}."
        )
    if needs_scann(path):
        import_scann_ops()
    loaded = tf.saved_model.load(path)
    # A plain attribute (assigning would wrap the dict in a trackable DictWrapper).
    object.__setattr__(loaded, "metadata", read_metadata(path))
    return loaded
