"""`tfrs-negatives embed`: a tower's SavedModel run over TFRecord features, one batch at a time.

The signature's inputs say which features of each `tf.train.Example` are read (by name,
with the dtype's kind: bytes for strings, int64 for integers and booleans, float for
floats); the output is a catalogue/anchor file of `id` and `embedding` records, so the
item tower's output feeds `mine` as `--catalogue` and the query tower's as `--anchors`.
Each worker loads the model once (`DoFn.setup`).
"""

import os
from typing import Any, Dict, Iterator, List, NamedTuple, Sequence, Tuple

from tfrs_negatives.beam.output import staged_prefix
from tfrs_negatives.beam.records import Id, check_one_kind, id_feature, id_kind, single_id

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

EMBEDDING_OUTPUT = "embedding"
_INT_KINDS = {
    types_pb2.DT_INT8: np.int8,
    types_pb2.DT_INT16: np.int16,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_UINT8: np.uint8,
    types_pb2.DT_UINT16: np.uint16,
    types_pb2.DT_UINT32: np.uint32,
    types_pb2.DT_BOOL: np.bool_,
}
_FLOAT_KINDS = {
    types_pb2.DT_HALF: np.float16,
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
}


class Input(NamedTuple):
    """One input of the signature: its name, feature kind, NumPy dtype, values per record."""

    name: str
    kind: str  # "bytes_list", "int64_list" or "float_list"
    dtype: Any  # a NumPy dtype (object for strings)
    shape: Tuple[int, ...]  # the shape of one record's value (`()` for one value)
    dtype_name: str  # the TensorFlow dtype, for messages ("string", "int64", ...)


class Row(NamedTuple):
    """One parsed record: where it came from, its id, its model inputs and kept features."""

    source: str
    id: Id
    inputs: Dict[str, np.ndarray]
    kept: Dict[str, bytes]


def signature_inputs(model: str, signature: str) -> Tuple[List[Input], str]:
    """The inputs and the embedding output of `signature`, read from `saved_model.pb`.

    The `SignatureDef` holds the names, dtypes and shapes the loaded signature's
    `structured_input_signature` gives, without loading the weights (a launcher need
    not hold a large tower in memory).

    Returns:
      `(inputs, output name)`: the output is the signature's only one, or `"embedding"`.

    Raises:
      FileNotFoundError: `model` holds no `saved_model.pb`.
      ValueError: an unknown `signature` (names the available ones), an input that is
        not batch-first with a fixed per-record shape or of an unsupported dtype, no
        single or `"embedding"` output.
    """
    definition = _signature_def(model, signature)
    inputs = [_input(name, info, signature) for name, info in sorted(definition.inputs.items())]
    outputs = sorted(definition.outputs)
    if len(outputs) == 1:
        return inputs, outputs[0]
    if EMBEDDING_OUTPUT in outputs:
        return inputs, EMBEDDING_OUTPUT
    raise ValueError(
        f"signature {signature!r} of `--model` {model!r} has outputs {outputs}: expected one "
        f"output, or one named {EMBEDDING_OUTPUT!r}."
    )


def _signature_def(model: str, signature: str) -> Any:
    path = FileSystems.join(model, "saved_model.pb")
    if not FileSystems.exists(path):
        raise FileNotFoundError(
            f"`--model` must be a SavedModel directory (holding saved_model.pb), got {model!r}."
        )
    proto = saved_model_pb2.SavedModel()
    with FileSystems.open(path) as f:
        proto.ParseFromString(f.read())
    graphs = [g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags] or list(
        proto.meta_graphs
    )
    available = sorted(k for g in graphs for k in g.signature_def if not k.startswith("__"))
    for graph in graphs:
        if signature in graph.signature_def:
            return graph.signature_def[signature]
    raise ValueError(
        f"`--signature` {signature!r} is not in `--model` {model!r}; its signatures are "
        f"{available}."
    )


def _input(name: str, info: Any, signature: str) -> Input:
    shape = info.tensor_shape
    dims = [d.size for d in shape.dim]
    if shape.unknown_rank or not dims or any(d < 0 for d in dims[1:]):
        shown = "unknown rank" if shape.unknown_rank else dims
        raise ValueError(
            f"input {name!r} of signature {signature!r} has shape {shown}: `embed` needs a "
            "batch dimension first and a fixed shape per record (e.g. [None] or [None, 3])."
        )
    dtype_name = types_pb2.DataType.Name(info.dtype).removeprefix("DT_").lower()
    if info.dtype == types_pb2.DT_STRING:
        return Input(name, "bytes_list", np.object_, tuple(dims[1:]), dtype_name)
    if info.dtype in _INT_KINDS:
        return Input(name, "int64_list", _INT_KINDS[info.dtype], tuple(dims[1:]), dtype_name)
    if info.dtype in _FLOAT_KINDS:
        return Input(name, "float_list", _FLOAT_KINDS[info.dtype], tuple(dims[1:]), dtype_name)
    raise ValueError(
        f"input {name!r} of signature {signature!r} has dtype {dtype_name}: `embed` reads "
        "string, integer, boolean or float features."
    )


def parse_row(item: Tuple[str, bytes], inputs: Sequence[Input], id_key: str, keep=()) -> Row:
    """Reads the id, the model inputs and the kept features of one record.

    Raises:
      ValueError: a missing input feature, one of another kind, or with another number
        of values than the signature's per-record shape (each names the file, the
        record's id and the feature); an integer out of the input dtype's range.
    """
    source, record = item
    example = example_pb2.Example.FromString(record)
    item_id = single_id(example, id_key, source)
    features = example.features.feature
    values = {}
    for spec in inputs:
        where = f"{source}: record {id_key}={item_id!r}"
        if spec.name not in features or features[spec.name].WhichOneof("kind") is None:
            raise ValueError(
                f"{where} has no feature {spec.name!r}, an input of the model (features "
                f"present: {sorted(features.keys())})."
            )
        kind = features[spec.name].WhichOneof("kind")
        if kind != spec.kind:
            raise ValueError(
                f"{where}: feature {spec.name!r} must be a {spec.kind} (the model input is "
                f"{spec.dtype_name}), got {kind}."
            )
        raw = getattr(features[spec.name], kind).value
        size = int(np.prod(spec.shape, dtype=np.int64))
        if len(raw) != size:
            raise ValueError(
                f"{where}: feature {spec.name!r} must hold {size} value(s) (shape "
                f"{list(spec.shape)} per record), got {len(raw)}."
            )
        values[spec.name] = _values(raw, spec, where).reshape(spec.shape)
    kept = {k: features[k].SerializeToString() for k in keep if k in features}
    return Row(source, item_id, values, kept)


def _values(raw: Any, spec: Input, where: str) -> np.ndarray:
    if spec.kind == "bytes_list":
        return np.asarray(list(raw), np.object_)
    if spec.kind == "float_list":
        return np.asarray(raw, spec.dtype)
    wide = np.asarray(raw, np.int64)
    if spec.dtype is np.bool_:
        bad = (wide != 0) & (wide != 1)
        low, high = 0, 1
    else:
        low, high = np.iinfo(spec.dtype).min, np.iinfo(spec.dtype).max
        bad = (wide < low) | (wide > high)
    if bad.any():
        raise ValueError(
            f"{where}: feature {spec.name!r} holds {int(wide[bad][0])}, outside the model "
            f"input's {spec.dtype_name} range [{low}, {high}]."
        )
    return wide.astype(spec.dtype)


class EmbedBatches(beam.DoFn):
    """Runs the signature on batches of `Row`s; yields serialized `id`, `embedding` records."""

    def __init__(  # noqa: PLR0913
        self, model: str, signature: str, inputs: Sequence[Input], output: str, id_key: str
    ):
        self._model, self._signature, self._output = model, signature, output
        self._inputs, self._id_key = list(inputs), id_key
        self._loaded = self._function = None  # set by `setup`, in the worker

    def setup(self) -> None:
        import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow loads)

        import tensorflow as tf

        loaded = tf.saved_model.load(self._model)
        self._function = loaded.signatures[self._signature]
        self._loaded = loaded  # keeps the signature's variables alive

    def process(self, batch: List[Row]) -> Iterator[bytes]:
        import tensorflow as tf

        feed = {
            spec.name: tf.constant(np.stack([row.inputs[spec.name] for row in batch]))
            for spec in self._inputs
        }
        embeddings = self._function(**feed)[self._output].numpy()
        _check_embeddings(embeddings, batch, self._output, self._id_key)
        for row, embedding in zip(batch, embeddings.astype(np.float32)):
            yield _record(row, embedding)


def _check_embeddings(embeddings: np.ndarray, batch: List[Row], output: str, id_key: str) -> None:
    first = f"{batch[0].source}, record {id_key}={batch[0].id!r}"
    if embeddings.ndim != 2 or embeddings.shape[0] != len(batch) or embeddings.shape[1] == 0:
        raise ValueError(
            f"the model's output {output!r} must be [batch, D] with D >= 1, got shape "
            f"{list(embeddings.shape)} for a batch of {len(batch)} records (first: {first})."
        )
    if not np.issubdtype(embeddings.dtype, np.floating):
        raise ValueError(
            f"the model's output {output!r} must be floating point, got {embeddings.dtype} "
            f"(batch from {first})."
        )
    bad = ~np.isfinite(embeddings).all(axis=1)
    if bad.any():
        row = batch[int(np.argmax(bad))]
        raise ValueError(
            f"{row.source}: record {id_key}={row.id!r}: the model's embedding holds NaN or "
            f"infinite values ({int(bad.sum())} such record(s) in its batch of {len(batch)})."
        )


def _record(row: Row, embedding: np.ndarray) -> bytes:
    example = example_pb2.Example()
    example.features.feature["id"].CopyFrom(id_feature([row.id]))
    example.features.feature["embedding"].float_list.value.extend(embedding.tolist())
    for key, feature in row.kept.items():
        example.features.feature[key].ParseFromString(feature)
    return example.SerializeToString()


def _check_count(count: int, pattern: str) -> None:
    if count == 0:
        raise ValueError(f"`--records` {pattern!r} holds no records.")


def embed_records(  # noqa: PLR0913 (the command's flags)
    model: str,
    records: str,
    output: str,
    id_key: str = "id",
    batch_size: int = 256,
    signature: str = "serving_default",
    pipeline_args: Sequence[str] = (),
    overwrite: bool = False,
    keep: Sequence[str] = (),
) -> str:
    """Embeds every record matching `records` with a SavedModel's signature.

    Args:
      model: A SavedModel directory (e.g. of `export.save_tower`) whose `signature`
        takes named feature tensors, batch first (`[B]` for one value per record, or
        `[B, ...]` with a fixed per-record shape), and returns one output, or several of
        which one is `"embedding"`: `[B, D]` floating point.
      records: Glob of TFRecord files of `tf.train.Example`: every input of the
        signature is a feature of each record (strings as bytes, integers and booleans
        as int64, floats as float), plus the id feature `id_key`.
      output: Output prefix of TFRecord files of `id` (the `id_key` value, int64 or
        bytes) and `embedding` (float list): a `mine` catalogue or anchor file.
      id_key: The record's single id (int64 or bytes); it may also be a model input.
      batch_size: Records per call of the model (at most).
      signature: The signature run.
      pipeline_args: Beam pipeline options (`--runner`, `--direct_num_workers`, ...).
      overwrite: Replace existing output files.
      keep: Features copied unchanged into the output when a record has them (e.g.
        `exclude` for anchors).

    Returns:
      The output prefix.

    Raises:
      FileNotFoundError: no file matches `records`; `model` is not a SavedModel.
      ValueError: (before the pipeline runs) an unknown `signature`, naming the
        available ones; inputs or outputs `embed` cannot handle; `batch_size < 1`;
        `keep` naming `id` or `embedding`.
        (While it runs, so the output is not written) a missing or mis-typed feature
        (names the file and the feature), non-finite embeddings (names the record id),
        mixed id kinds, no records.
      FileExistsError: the output exists and `overwrite` is False.
    """
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    inputs, output_name = signature_inputs(model, signature)
    if not FileSystems.match([records])[0].metadata_list:
        raise FileNotFoundError(f"`--records` {records!r} matches no file.")
    keep = list(keep)
    if {"id", "embedding"} & set(keep):
        raise ValueError(
            f"`keep` must not name the output's own features 'id' and 'embedding', got {keep}."
        )
    embed = EmbedBatches(_local(model), signature, inputs, output_name, id_key)
    with staged_prefix(output, overwrite) as staging:
        with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as pipeline:
            rows = (
                pipeline
                | "Pattern" >> beam.Create([records])
                | "Read" >> beam.io.ReadAllFromTFRecord(with_filename=True)
                | "Parse" >> beam.Map(parse_row, inputs, id_key, keep)
            )
            _ = (
                rows
                | "Count" >> beam.combiners.Count.Globally()
                | "NonEmpty" >> beam.Map(_check_count, records)
            )
            _ = (
                rows
                | "Kinds" >> beam.Map(lambda row: id_kind(row.id))
                | "Distinct" >> beam.Distinct()
                | "AllKinds" >> beam.combiners.ToList()
                | "OneKind" >> beam.Map(check_one_kind, f"the `{id_key}` ids")
            )
            _ = (
                rows
                | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=int(batch_size))
                | "Embed" >> beam.ParDo(embed)
                | "Write" >> beam.io.WriteToTFRecord(staging)
            )
    return output


def _local(model: str) -> str:
    """`model`, made absolute when local (workers may run in another directory)."""
    return model if "://" in model else os.path.abspath(model)
