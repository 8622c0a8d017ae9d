"""Loading an exported retrieval model: ScaNN's ops first when the model needs them."""

import json
import os
import re
from typing import Any, Dict, List, Optional

from tfrs_negatives.scann_config import import_scann_ops

import tensorflow as tf

# Written beside the model by `save_retrieval`. `assets.extra/` is the SavedModel
# directory TensorFlow Serving reserves for files that are not loaded with the graph.
METADATA_FILE = os.path.join("assets.extra", "tfrs_negatives_export.json")
SCANN_OP_PREFIX = "Scann>"
VARIABLES_INDEX = os.path.join("variables", "variables.index")
_DATA_SHARD = re.compile(r"^variables\.data-(\d+)-of-(\d+)$")
# What `tf.saved_model.load` raises when the checkpoint under variables/ cannot be read:
# files not found (with a misleading "different device" hint), a shard shorter than
# the index says (IndexError "Read less bytes than requested"), a damaged shard.
_RESTORE_ERRORS = (FileNotFoundError, IndexError, tf.errors.OpError)


class IncompleteExportError(OSError):
    """A SavedModel whose weights (`variables/`) are missing or cut short on disk."""


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


def missing_weights(path: str, expect_variables: bool = True) -> Optional[str]:
    """What is missing or empty among the SavedModel's weight files; None if nothing.

    Checks `variables/`, `variables/variables.index` and every data shard
    `variables/variables.data-<i>-of-<n>` (present, not empty). A shard cut short but
    not empty is only seen when TensorFlow reads it (see `load_retrieval`).

    Args:
      path: Directory of the SavedModel.
      expect_variables: Whether a missing `variables/` is a problem (every SavedModel
        TensorFlow 2 writes has one; a TF1 model without variables may not).
    """
    folder = os.path.join(path, "variables")
    if not os.path.isdir(folder):
        return "its variables/ directory (the weights) is missing" if expect_variables else None
    names = set(os.listdir(folder))
    if "variables.index" not in names:
        return f"{VARIABLES_INDEX} is missing"
    if os.path.getsize(os.path.join(path, VARIABLES_INDEX)) == 0:
        return f"{VARIABLES_INDEX} is empty (0 bytes)"
    return _missing_shards(folder, names)


def _missing_shards(folder: str, names: set) -> Optional[str]:
    """Which data shards `variables.data-<i>-of-<n>` are absent or empty; None if none."""
    shards = [m for m in map(_DATA_SHARD.match, sorted(names)) if m]
    if not shards:
        return "variables/ holds no data shard (variables.data-*-of-*)"
    digits, total = len(shards[0].group(1)), int(shards[0].group(2))
    expected = [f"variables.data-{i:0{digits}d}-of-{shards[0].group(2)}" for i in range(total)]
    missing = [name for name in expected if name not in names]
    if missing:
        return f"variables/ lacks {_listed(missing)} of its {total} data shard(s)"
    empty = [name for name in expected if os.path.getsize(os.path.join(folder, name)) == 0]
    if empty:
        return f"variables/{_listed(empty)} {'is' if len(empty) == 1 else 'are'} empty (0 bytes)"
    return None


def _listed(names: List[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _incomplete(path: str, problem: str) -> IncompleteExportError:
    return IncompleteExportError(
        f"The export at {path!r} is incomplete: {problem}. It was copied or written only in "
        "part; copy it again, or export it again with save_retrieval."
    )


def _restore_problem(path: str, err: BaseException) -> Optional[str]:
    """Why `tf.saved_model.load` failed on the weights, if it did; None for other errors."""
    problem = missing_weights(path)
    if problem:
        return problem
    text = str(err).strip()
    unreadable = (IndexError, tf.errors.DataLossError, tf.errors.OutOfRangeError)
    if not isinstance(err, unreadable) and os.path.join("variables", "variables") not in text:
        return None
    first = text.splitlines()[0] if text else type(err).__name__
    return (
        f"TensorFlow could not read its weights under variables/ ({first}): a data shard is "
        f"cut short or damaged ({_shard_sizes(path)})"
    )


def _shard_sizes(path: str) -> str:
    folder = os.path.join(path, "variables")
    sizes = [
        f"{name} {os.path.getsize(os.path.join(folder, name))} bytes"
        for name in sorted(os.listdir(folder))
        if _DATA_SHARD.match(name)
    ]
    return ", ".join(sizes)


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
      IncompleteExportError: its weights are missing, empty or cut short (names the
        path and the file; see `missing_weights`).
      ImportError: the model needs ScaNN's ops and they cannot be loaded (names the
        install command).
    """
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise FileNotFoundError(
            f"`path` must be a SavedModel directory (holding saved_model.pb), got {path!r}."
        )
    metadata = read_metadata(path)
    problem = missing_weights(path, expect_variables=bool(metadata))
    if problem:
        raise _incomplete(path, problem)
    if needs_scann(path):
        import_scann_ops()
    try:
        loaded = tf.saved_model.load(path)
    except _RESTORE_ERRORS as err:
        problem = _restore_problem(path, err)
        if problem is None:
            raise
        raise _incomplete(path, problem) from err
    # A plain attribute (assigning would wrap the dict in a trackable DictWrapper).
    object.__setattr__(loaded, "metadata", metadata)
    return loaded
