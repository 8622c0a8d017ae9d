"""`tfrs-negatives mine`: hard-negative windows of every anchor over a sharded catalogue.

The catalogue is split into `num_shards` shards by a hash of the id; each shard's index
is built once and saved beside the output (`shard_index`); every batch of anchors meets
every shard (a `GroupByKey` per shard, whose index the searching worker loads once),
each shard returns its best candidates, and the candidates of an anchor are merged
exactly (`window.merge_window`).
"""

import zlib
from typing import Dict, Iterable, Sequence, Tuple

from tfrs_negatives.beam.output import staged_prefix
from tfrs_negatives.beam.records import (
    Embedded,
    Id,
    check_one_kind,
    example_bytes,
    id_kind,
    parse_embedded,
)
from tfrs_negatives.beam.shard_index import INDEXES, ShardIndex, ShardInfo, save_shard
from tfrs_negatives.beam.window import Neighbours, merge_window, needed

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions


def shard_of(item_id: Id, num_shards: int) -> int:
    """A stable shard of `item_id` (the same in every process)."""
    data = (
        item_id if isinstance(item_id, bytes) else int(item_id).to_bytes(8, "little", signed=True)
    )
    return zlib.crc32(data) % num_shards


def _parsed(item: Tuple[str, bytes], with_exclude: bool) -> Tuple[str, Embedded]:
    source, record = item
    return source, parse_embedded(record, source, with_exclude)


def _shard_matrix(items: Iterable[Tuple[str, Embedded]]):
    """`[N, D]` embeddings and `[N]` ids of one shard; duplicates and mixed dims raise."""
    ids, rows, sources, seen = [], [], {}, {}
    for source, item in items:
        if item.id in seen:
            raise ValueError(
                f"catalogue id {item.id!r} appears twice ({seen[item.id]} and {source}); "
                "catalogue ids must be distinct."
            )
        seen[item.id] = source
        dims = sources.setdefault(item.embedding.size, source)
        if len(sources) > 1:
            raise ValueError(
                f"catalogue embeddings differ in size: {sorted(sources)} (e.g. {dims} and "
                f"{source}, record {item.id!r})."
            )
        ids.append(item.id)
        rows.append(item.embedding)
    return np.stack(rows).astype(np.float32), ids


def _build_shard(element, index_root: str, kind: str, depth: int) -> Tuple[int, ShardInfo]:
    """Builds and saves one shard's index: `(shard, ShardInfo)`."""
    shard, items = element
    embeddings, ids = _shard_matrix(items)
    directory = FileSystems.join(index_root, f"shard-{shard:05d}")
    return shard, save_shard(directory, embeddings, ids, kind, depth)


class _SearchShard(beam.DoFn):
    """Loads a shard's index once and searches every anchor batch that meets it."""

    def __init__(self, kind: str, max_rank: int) -> None:
        self.kind = kind
        self.max_rank = max_rank

    def process(self, element, shards: Dict[int, ShardInfo]):
        shard, batches = element
        info = shards.get(shard)
        index = ShardIndex(info.directory, self.kind) if info else None
        for batch in batches:
            if index is not None:
                _check_dims(batch, info)
            ks = [needed(self.max_rank, a.exclude) for _, a in batch]
            if index is None:  # no catalogue id hashed to this shard
                parts = [Neighbours(np.zeros([0]), []) for _ in batch]
            else:
                parts = index.top(np.stack([a.embedding for _, a in batch]), ks)
            for (_, anchor), part in zip(batch, parts):
                yield anchor.id, (anchor.exclude, part)


def _check_dims(batch, info: ShardInfo) -> None:
    for source, anchor in batch:
        if anchor.embedding.size != info.dim:
            raise ValueError(
                f"anchor embeddings have {anchor.embedding.size} values ({source}, record "
                f"{anchor.id!r}), catalogue embeddings {info.dim}."
            )


def _window_record(element, num_shards: int, window: Tuple[int, int]) -> bytes:
    anchor, parts = element
    parts = list(parts)
    if len(parts) != num_shards:
        raise ValueError(f"anchor id {anchor!r} appears {len(parts) // num_shards} times.")
    negatives = merge_window(anchor, parts[0][0], [p for _, p in parts], window)
    return example_bytes(anchor=[anchor], negatives=negatives)


def _check_count(count: int, what: str, pattern: str) -> None:
    if count == 0:
        raise ValueError(f"`--{what}` {pattern!r} holds no records.")


def _read(pipeline, pattern: str, what: str, with_exclude: bool):
    if not FileSystems.match([pattern])[0].metadata_list:
        raise FileNotFoundError(f"`--{what}` {pattern!r} matches no file.")
    records = (
        pipeline
        | f"{what}Pattern" >> beam.Create([pattern])
        | f"{what}Read" >> beam.io.ReadAllFromTFRecord(with_filename=True)
        | f"{what}Parse" >> beam.Map(_parsed, with_exclude)
    )
    _ = (
        records
        | f"{what}Count" >> beam.combiners.Count.Globally()
        | f"{what}NonEmpty" >> beam.Map(_check_count, what, pattern)
    )
    return records


def check_window(window: Tuple[int, int]) -> Tuple[int, int]:
    """`(min, max)` with `0 <= min < max`."""
    low, high = (int(w) for w in window)
    if not 0 <= low < high:
        raise ValueError(f"`window` must be (min, max) with 0 <= min < max, got {window!r}.")
    return low, high


def mine_windows(  # noqa: PLR0913 (the command's flags)
    catalogue: str,
    anchors: str,
    output: str,
    window: Tuple[int, int] = (100, 500),
    num_shards: int = 8,
    index: str = "exact",
    anchor_batch: int = 512,
    pipeline_args: Sequence[str] = (),
    overwrite: bool = False,
) -> str:
    """Mines the `[min, max)` window of every anchor over the catalogue.

    Args:
      catalogue: Glob of TFRecord catalogue files (`id`, `embedding`).
      anchors: Glob of TFRecord anchor files (`id`, `embedding`, optional `exclude`).
      output: Output prefix of TFRecord files of `anchor`, `negatives` (rank order).
      window: Ranks kept, counted among admissible items (not the anchor, not its
        `exclude` ids), as the in-process miners' `min_rank`/`max_rank`.
      num_shards: Catalogue shards (one index each).
      index: `"exact"` (every item scored) or `"scann"` (a ScaNN index per shard, the
        package's defaults, saved once and loaded by the searching workers). Either
        way candidates are scored in float64 and ties rank by id.
      anchor_batch: Anchors scored together against a shard.
      pipeline_args: Beam pipeline options (`--runner`, `--direct_num_workers`, ...).
      overwrite: Replace existing output files.

    Returns:
      The output prefix.
    """
    window = check_window(window)
    if index not in INDEXES:
        raise ValueError(f"`index` must be one of {INDEXES}, got {index!r}.")
    if int(num_shards) < 1 or int(anchor_batch) < 1:
        raise ValueError(
            f"`num_shards` and `anchor_batch` must be >= 1, got {num_shards}, {anchor_batch}."
        )
    with staged_prefix(output, overwrite) as staging:
        with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as pipeline:
            _write(pipeline, catalogue, anchors, staging, window, int(num_shards), anchor_batch,
                   index)
    return output


def _write(  # noqa: PLR0913 (the pipeline's parts)
    pipeline, catalogue, anchors, staging, window, num_shards, anchor_batch, index
) -> None:
    items = _read(pipeline, catalogue, "catalogue", False)
    queries = _read(pipeline, anchors, "anchors", True)
    _ = (
        (items, queries)
        | "Ids" >> beam.Flatten()
        | "Kinds" >> beam.Map(lambda e: id_kind(e[1].id))
        | "Distinct" >> beam.Distinct()
        | "AllKinds" >> beam.combiners.ToList()
        | "OneKind" >> beam.Map(check_one_kind, "the catalogue and anchor ids")
    )
    index_root = FileSystems.join(FileSystems.split(staging)[0], "index")
    shards = (
        items
        | "Shard" >> beam.Map(lambda e: (shard_of(e[1].id, num_shards), e))
        | "ShardItems" >> beam.GroupByKey()
        | "Index" >> beam.Map(_build_shard, index_root, index, window[1] + 1)
    )
    _ = (
        queries
        | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=anchor_batch)
        | "ToShards" >> beam.FlatMap(lambda b: [(s, b) for s in range(num_shards)])
        | "MeetShard" >> beam.GroupByKey()
        | "Search" >> beam.ParDo(_SearchShard(index, window[1]), beam.pvalue.AsDict(shards))
        | "ByAnchor" >> beam.GroupByKey()
        | "Window" >> beam.Map(_window_record, num_shards, window)
        | "Write" >> beam.io.WriteToTFRecord(staging)
    )
