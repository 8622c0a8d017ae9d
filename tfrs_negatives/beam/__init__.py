"""Catalogue-scale steps on Apache Beam: exact item counts and sharded hard-negative mining.

Each step is a Python function that builds and runs a Beam pipeline (DirectRunner by
default; Dataflow, Flink or Spark by the standard pipeline options) and a subcommand of
`tfrs-negatives` (`count`, `mine`). Beam is imported by these modules only, so the rest
of the package does not need it (`pip install tfrs_negatives[beam]`).

File contract (TFRecord files of `tf.train.Example`, one file or a glob of shards):

* catalogue: `id` (int64 or bytes), `embedding` (float list);
* anchors: `id`, `embedding`, optional `exclude` (id list: the anchor's known positives);
* mined output: `anchor` (id), `negatives` (id list, rank order);
* interactions (for `count`): any features, one of them the counted id.
"""

from tfrs_negatives.beam.count import count_items, load_counts
from tfrs_negatives.beam.mine import mine_windows

__all__ = ["count_items", "load_counts", "mine_windows"]
