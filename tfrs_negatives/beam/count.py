"""`tfrs-negatives count`: exact item counts over TFRecord interactions, one combine per key."""

from typing import Optional, Sequence, Tuple

from tfrs_negatives.beam.output import staged_prefix
from tfrs_negatives.beam.records import Id, check_one_kind, feature_ids, id_feature, id_kind
from tfrs_negatives.data.offline import COUNTS_SUFFIX, load_counts

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow.core.example import example_pb2

__all__ = ["count_items", "load_counts"]


def _keyed_weights(item: Tuple[str, bytes], key: str, weight_key: Optional[str]):
    """`(id, weight)` pairs of one interaction record (every id of a list counts)."""
    source, record = item
    features = example_pb2.Example.FromString(record).features.feature
    if key not in features:
        raise ValueError(
            f"{source}: a record has no feature {key!r} (the `--key` to count; features "
            f"present: {sorted(features.keys())})."
        )
    ids = feature_ids(features[key], key, source)
    weight = 1.0
    if weight_key is not None:
        if weight_key not in features or len(features[weight_key].float_list.value) != 1:
            raise ValueError(f"{source}: a record has no single float {weight_key!r} weight.")
        weight = float(features[weight_key].float_list.value[0])
        if not weight >= 0:
            raise ValueError(f"{source}: weight {weight_key!r} must be >= 0, got {weight}.")
    return [(item_id, weight) for item_id in ids]


def _count_record(entry: Tuple[Id, float]) -> bytes:
    example = example_pb2.Example()
    example.features.feature["id"].CopyFrom(id_feature([entry[0]]))
    example.features.feature["count"].float_list.value.append(entry[1])
    return example.SerializeToString()


def count_items(  # noqa: PLR0913 (the command's flags)
    interactions: str,
    output: str,
    key: str = "item_id",
    weight_key: Optional[str] = None,
    pipeline_args: Sequence[str] = (),
    overwrite: bool = False,
) -> str:
    """Counts every id of feature `key` over the records matching `interactions`.

    Args:
      interactions: Glob of TFRecord files of `tf.train.Example`.
      output: Output prefix; the counts go to one file `output + "-00000-of-00001"`
        of records `id`, `count` (float), which `data.load_counts` reads.
      key: The counted feature (int64 or bytes; every id of a list counts once).
      weight_key: Optional float feature: each record counts with this weight.
      pipeline_args: Beam pipeline options (`--runner`, `--direct_num_workers`, ...).
      overwrite: Replace an existing output.

    Returns:
      The path of the written counts file.
    """
    with staged_prefix(output, overwrite) as staging:
        with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as pipeline:
            counts = (
                pipeline
                | "Pattern" >> beam.Create([interactions])
                | "Read" >> beam.io.ReadAllFromTFRecord(with_filename=True)
                | "Ids" >> beam.FlatMap(_keyed_weights, key, weight_key)
                | "Sum" >> beam.CombinePerKey(sum)
            )
            _ = (
                counts
                | "Kinds" >> beam.Map(lambda e: id_kind(e[0]))
                | "Distinct" >> beam.Distinct()
                | "All" >> beam.combiners.ToList()
                | "Check" >> beam.Map(check_one_kind, "the counted ids")
            )
            _ = (
                counts
                | "Records" >> beam.Map(_count_record)
                | "Write" >> beam.io.WriteToTFRecord(staging, num_shards=1)
            )
    return output + COUNTS_SUFFIX
