"""Impression negatives: items shown to a query and not engaged with, as a mined table.

Logged impressions are tempting negatives, but Facebook's EBR (Huang et al. 2020)
found that a retrieval model trained with non-click impressions as its negatives
lost recall badly (impressions are the hard cases that passed the previous ranker,
not the catalogue the retriever must reject): use them as a supplementary source
beside easy (in-batch, uniform) negatives, never alone. With a ranker score per
impression the highest-scored non-engaged items come first ("ranker-distilled"
negatives).
"""

from typing import Any, Optional

from tfrs_negatives.mining.table import HardNegativeTable
from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf


def impression_table(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
    query_ids: Any,
    item_ids: Any,
    engaged: Any,
    catalogue: Catalogue,
    window: int,
    scores: Optional[Any] = None,
) -> HardNegativeTable:
    """A query-side `HardNegativeTable` of each query's shown-but-not-engaged items.

    Items the query engaged with anywhere in the log, and items outside the
    catalogue, are dropped; each item appears once per query. Order: by ranker
    score, highest first, when `scores` are given, else by first impression.

    Args:
      query_ids: `[n]` query of each impression.
      item_ids: `[n]` item shown.
      engaged: `[n]` whether the query engaged with it (click, rating, ...).
      catalogue: The catalogue whose rows the table holds.
      window: Entries kept per query.
      scores: Optional `[n]` ranker scores.

    Returns:
      A filled `HardNegativeTable` whose anchors are the log's distinct queries.
    """
    if np.size(query_ids) == 0:
        raise ValueError("The impression log is empty: `query_ids` holds no impression.")
    queries = np.asarray(to_int64_ids(query_ids, "query_ids"))
    items = np.asarray(to_int64_ids(item_ids, "item_ids"))
    engaged = np.asarray(engaged, bool).reshape(-1)
    n = len(queries)
    if len(items) != n or len(engaged) != n:
        raise ValueError(
            f"`query_ids`, `item_ids` and `engaged` must have one entry per impression, got "
            f"{n}, {len(items)} and {len(engaged)}."
        )
    order_key = np.arange(n, dtype=np.float64)
    if scores is not None:
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(scores) != n or not np.all(np.isfinite(scores)):
            raise ValueError(f"`scores` must hold {n} finite ranker scores.")
        order_key = -scores
    rows, found = catalogue.lookup(items)
    rows, found = rows.numpy(), found.numpy()
    _, first_seen, query_index = np.unique(queries, return_index=True, return_inverse=True)
    anchors = tf.convert_to_tensor(query_ids).numpy()[first_seen]  # the ids as given
    positive_keys = np.unique(query_index[engaged] * catalogue.size + rows[engaged])
    keys = query_index * catalogue.size + rows
    keep = found & ~engaged & ~np.isin(keys, positive_keys)
    order = np.lexsort((order_key[keep], query_index[keep]))
    q, r = query_index[keep][order], rows[keep][order]
    _, first = np.unique(q * catalogue.size + r, return_index=True)
    first = np.sort(first)  # each (query, item) once, at its best position
    q, r = q[first], r[first]
    slot = np.arange(len(q)) - np.searchsorted(q, q)  # position within the query's list
    inside = slot < window
    neighbours = np.full([len(anchors), window], -1, np.int64)
    neighbours[q[inside], slot[inside]] = r[inside]
    counts = np.minimum(np.bincount(q, minlength=len(anchors)), window).astype(np.int32)
    table = HardNegativeTable(anchors, window)
    table.assign(neighbours, counts)
    return table
