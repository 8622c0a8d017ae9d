"""Catalogue-scale steps on Apache Beam: tower embeddings, exact item counts, sharded mining.

Mining builds one index per catalogue shard (`index="exact"` or `"scann"`), saves it
beside the output (`shard_index`) and lets the searching workers load it.

Each step is a Python function that builds and runs a Beam pipeline (DirectRunner by
default; Dataflow, Flink or Spark by the standard pipeline options) and a subcommand of
`tfrs-negatives` (`embed`, `count`, `mine`). Beam is imported by these modules only, so the rest
of the package does not need it (`pip install tfrs_negatives[beam]`).

File contract (TFRecord files of `tf.train.Example`, one file or a glob of shards):

* catalogue: `id` (int64 or bytes), `embedding` (float list);
* anchors: `id`, `embedding`, optional `exclude` (id list: the anchor's known positives);
* mined output: `anchor` (id), `negatives` (id list, rank order);
* records to embed (for `embed`): the model signature's inputs and an id feature; its
  output is a catalogue or anchor file;
* interactions (for `count`): any features, one of them the counted id.
"""

import importlib
from typing import Any

#: Public names and the modules that hold them (imported on first use, so that
#: `tfrs_negatives.beam.cli` loads without Beam installed).
_EXPORTS = {
    "count_items": "tfrs_negatives.beam.count",
    "embed_records": "tfrs_negatives.beam.embed",
    "load_counts": "tfrs_negatives.data.offline",
    "mine_windows": "tfrs_negatives.beam.mine",
}

__all__ = ["count_items", "embed_records", "load_counts", "mine_windows"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfrs_negatives.beam' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
