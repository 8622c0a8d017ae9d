"""How many mined negatives are really positives? False-negative rate by rank bucket.

The neighbours of a positive are often unlabelled positives: mined as negatives they
push the model away from what the user wants (`shared/seeds/negative-sampling-lesson`:
about 10% of a positive's nearest neighbours can be true positives). Held-out
interactions reveal some of them: the share of mined negatives that the query
interacts with in held-out data estimates (a lower bound of) the false-negative
rate, and its profile over ranks shows where a window should start.
"""

from typing import Any, Dict, List, Sequence

from tfrs_negatives.mining.table import HardNegativeTable, KnownPositives
from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf


def false_negative_rate_by_rank(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
    table: HardNegativeTable,
    catalogue: Catalogue,
    anchor_ids: Any,
    query_ids: Any,
    held_out: KnownPositives,
    min_rank: int,
    bucket_edges: Sequence[int],
) -> List[Dict[str, float]]:
    """Share of mined negatives that are held-out positives of the example's query.

    Args:
      table: A mined table (its entry `k` of an anchor has rank `min_rank + k`).
      catalogue: The catalogue the table's rows index.
      anchor_ids: `[n]` anchor of each example (its positive item for item-side
        tables, its query id for query-side ones).
      query_ids: `[n]` query of each example.
      held_out: `KnownPositives` of held-out (query, item) pairs.
      min_rank: The miner's `min_rank`.
      bucket_edges: Increasing rank edges, e.g. `[0, 10, 50, 100]`: buckets
        `[0, 10), [10, 50), [50, 100)`.

    Returns:
      One dict per bucket: `lo`, `hi`, `mined` (negatives in the bucket),
      `false_negatives` (of them, held-out positives) and `rate` (NaN if none mined).
    """
    edges = list(bucket_edges)
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"`bucket_edges` must be >= 2 increasing ranks, got {edges}.")
    anchors = to_int64_ids(anchor_ids, "anchor_ids")
    queries = to_int64_ids(query_ids, "query_ids")
    if anchors.shape[0] != queries.shape[0]:
        raise ValueError(
            f"`anchor_ids` and `query_ids` must have one entry per example, got "
            f"{anchors.shape[0]} and {queries.shape[0]}."
        )
    rows, found = table.rows(anchors)
    neighbours = tf.gather(table.neighbours, rows)  # [n, W] catalogue rows or -1
    valid = (neighbours >= 0) & found[:, None]
    item_ids = tf.gather(catalogue.ids, tf.maximum(neighbours, 0))
    hit = held_out.contains(queries[:, None], item_ids) & valid
    ranks = min_rank + np.arange(table.window)
    mined_per_rank = tf.reduce_sum(tf.cast(valid, tf.int64), 0).numpy()
    hits_per_rank = tf.reduce_sum(tf.cast(hit, tf.int64), 0).numpy()
    out = []
    for lo, hi in zip(edges, edges[1:]):
        in_bucket = (ranks >= lo) & (ranks < hi)
        mined = int(mined_per_rank[in_bucket].sum())
        false = int(hits_per_rank[in_bucket].sum())
        out.append(
            {
                "lo": lo,
                "hi": hi,
                "mined": mined,
                "false_negatives": false,
                "rate": false / mined if mined else float("nan"),
            }
        )
    return out
