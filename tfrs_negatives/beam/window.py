"""The maths of sharded mining in NumPy: per-shard top-k and the exact merge into a rank window.

Scores are dot products in float64; ties rank by id, so the merge over shards equals
a brute-force ranking of the whole catalogue exactly.
"""

from typing import Iterable, List, NamedTuple, Sequence, Tuple

from tfrs_negatives.beam.records import Id

import numpy as np


class Neighbours(NamedTuple):
    """One shard's best candidates of one anchor, best first."""

    scores: np.ndarray  # [k] float64
    ids: Sequence[Id]  # [k] ids: an int64 array (cheap to pickle) or a list of bytes


def ranked(scores: np.ndarray, ids: Sequence[Id]) -> np.ndarray:
    """Positions ordering `scores` best first, ties by id."""
    if ids and not isinstance(ids[0], bytes):
        return np.lexsort((np.asarray(ids, np.int64), -np.asarray(scores)))
    return np.asarray(sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i])), np.int64)


def shard_top(
    anchors: np.ndarray, items: np.ndarray, item_ids: Sequence[Id], ks: Sequence[int]
) -> List[Neighbours]:
    """Each anchor's `ks[a]` best items of one shard.

    Args:
      anchors: `[A, D]` anchor embeddings.
      items: `[N, D]` the shard's item embeddings.
      item_ids: `[N]` their ids.
      ks: `[A]` how many neighbours each anchor needs (capped at `N`).

    Returns:
      `A` `Neighbours`, best first (ties by id).
    """
    scores = anchors.astype(np.float64) @ items.astype(np.float64).T
    result = []
    for row, wanted in zip(scores, ks):
        k = min(int(wanted), len(item_ids))
        if k == 0:
            result.append(Neighbours(np.zeros([0]), []))
            continue
        best = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
        order = best[ranked(row[best], [item_ids[i] for i in best])]
        result.append(Neighbours(row[order], compact_ids([item_ids[i] for i in order])))
    return result


def compact_ids(ids: list) -> Sequence[Id]:
    """Int ids as an int64 array (what Beam's coders pickle fastest); bytes ids as they are."""
    return ids if ids and isinstance(ids[0], bytes) else np.asarray(ids, np.int64)


def needed(max_rank: int, exclude: Sequence[Id]) -> int:
    """Neighbours a shard returns so that ranks `< max_rank` survive dropping self and excludes."""
    return max_rank + 1 + len(set(exclude))


def merge_window(
    anchor: Id,
    exclude: Iterable[Id],
    parts: Iterable[Neighbours],
    window: Tuple[int, int],
) -> List[Id]:
    """The anchor's admissible neighbours over all shards, ranks `[min, max)`.

    Args:
      anchor: The anchor's id (never its own negative).
      exclude: Ids never taken (the anchor's known positives).
      parts: Every shard's `Neighbours` of this anchor.
      window: `(min_rank, max_rank)`, counted among admissible items from 0.

    Returns:
      `max_rank - min_rank` ids in rank order.

    Raises:
      ValueError: fewer than `max_rank` admissible items.
    """
    dropped = set(exclude) | {anchor}
    scores, ids = [], []
    for part in parts:
        scores.extend(part.scores.tolist())
        ids.extend(part.ids.tolist() if isinstance(part.ids, np.ndarray) else part.ids)
    admissible = [i for i in ranked(np.asarray(scores), ids) if ids[i] not in dropped]
    if len(admissible) < window[1]:
        raise ValueError(
            f"anchor {anchor!r}: the catalogue has only {len(admissible)} admissible items "
            f"(its own id and {len(dropped) - 1} excluded ids dropped), fewer than the "
            f"window's end {window[1]}; use a smaller `--window`."
        )
    return [ids[i] for i in admissible[window[0] : window[1]]]
