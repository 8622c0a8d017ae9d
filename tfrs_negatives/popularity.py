"""Popularity buckets of a catalogue: one definition for the metric and the offline evaluation.

Items are ordered by training count, most popular first (ties by index), and cut
where the running total of interactions reaches given shares (`popularity_buckets`;
the head of `head_items` is its first bucket), or into groups of equal numbers of
items (`popularity_groups`). `tfrs_negatives.metrics.PopularityStratifiedRecall`
and `tfrs_negatives.evaluation` (the compare command) both use these.
"""

from typing import Dict, Mapping, Sequence, Union

import numpy as np

BUCKET_PRESETS: Dict[str, Dict[str, float]] = {
    "head_torso_tail": {"head": 0.5, "torso": 0.3, "tail": 0.2},
    "head_tail": {"head": 0.5, "tail": 0.5},
    "deciles": {f"decile{i}": 0.1 for i in range(1, 11)},
}
"""Named bucket specifications: bucket name -> share of training interactions, most popular
first. `"head_tail"` splits like `head_items` (share 0.5)."""

_SHARE_TOLERANCE = 1e-6
_BOUNDARY_TOLERANCE = 1e-9


def resolve_buckets(buckets: Union[str, Sequence[float], Mapping[str, float]]) -> Dict[str, float]:
    """Bucket names and shares (most popular first) from a `buckets` specification.

    Args:
      buckets: A name in `BUCKET_PRESETS` (`"head_torso_tail"`, `"head_tail"`,
        `"deciles"`); a sequence of shares (buckets named `bucket1`, `bucket2`, ...);
        or a mapping of bucket name to share. Shares must be positive and sum to 1.

    Returns:
      Ordered dict of bucket name to share.

    Raises:
      ValueError: unknown name, shares not positive or not summing to 1, bad names.
      TypeError: `buckets` of another type.
    """
    if isinstance(buckets, str):
        if buckets not in BUCKET_PRESETS:
            raise ValueError(
                f"`buckets` must be one of {sorted(BUCKET_PRESETS)}, a sequence of shares or a "
                f"mapping of bucket name to share, got {buckets!r}."
            )
        return dict(BUCKET_PRESETS[buckets])
    if isinstance(buckets, Mapping):
        names, shares = list(buckets.keys()), list(buckets.values())
    elif isinstance(buckets, (Sequence, np.ndarray)):
        shares = list(np.asarray(buckets, dtype=np.float64).reshape(-1))
        names = [f"bucket{i}" for i in range(1, len(shares) + 1)]
    else:
        raise TypeError(
            "`buckets` must be a preset name, a sequence of shares or a mapping of bucket name "
            f"to share, got {type(buckets).__name__}."
        )
    if not shares:
        raise ValueError("`buckets` must hold at least one share, got none.")
    for name in names:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(
                f"`buckets` names must be non-empty strings without '/', got {name!r}."
            )
    try:
        values = np.asarray(shares, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"`buckets` shares must be numbers, got {shares!r}.") from error
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"`buckets` shares must be positive and finite, got {values.tolist()}.")
    if abs(values.sum() - 1.0) > _SHARE_TOLERANCE:
        raise ValueError(
            f"`buckets` shares must sum to 1, got {values.tolist()} (sum {values.sum():.6g})."
        )
    return dict(zip(names, values.tolist()))


def popularity_buckets(counts: Union[Sequence, np.ndarray], shares: Sequence[float]) -> np.ndarray:
    """Bucket index of every item, by the share of training interactions it falls in.

    Items are sorted by count, most popular first (ties by index). Bucket `b` ends
    with the item whose running total of interactions first reaches
    `shares[0] + ... + shares[b]` of all interactions, so bucket 0 is the shortest
    prefix holding `shares[0]` of them (as `head_items`)
    and the last bucket gets the rest, including every item never seen in training.
    A bucket is empty when a single item holds more than its share.

    Args:
      counts: `[num_items]` non-negative training counts (any positive sum).
      shares: Shares of interactions per bucket, positive, summing to 1.

    Returns:
      `[num_items]` int32 bucket index in `[0, len(shares))`.
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    order = np.argsort(-counts, kind="stable")
    cumulative = np.cumsum(counts[order])
    total = cumulative[-1]
    bounds = np.cumsum(np.asarray(shares, dtype=np.float64))[:-1] * total
    # One past the last position of each bucket; the tolerance keeps 0.1 + 0.2 at 0.3.
    ends = np.searchsorted(cumulative, bounds * (1.0 - _BOUNDARY_TOLERANCE), side="left") + 1
    bucket = np.empty(counts.size, dtype=np.int32)
    bucket[order] = np.searchsorted(ends, np.arange(counts.size), side="right")
    return bucket


def head_items(train_item_indices: np.ndarray, num_items: int, share: float = 0.5) -> np.ndarray:
    """Boolean `[num_items]` mask of the most popular items holding `share` of interactions.

    Items are sorted by training count (ties by index); the head is the shortest
    prefix whose counts reach `share` of all training interactions: bucket 0 of
    `popularity_buckets(counts, [share, 1 - share])`.

    Args:
      train_item_indices: `[n]` item indices (in `[0, num_items)`) of training
        interactions.
      num_items: Catalogue size.
      share: Share of interactions the head holds, in `(0, 1)`.

    Returns:
      `[num_items]` boolean array, True for head items.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"`share` must be in (0, 1), got {share!r}.")
    counts = np.bincount(np.asarray(train_item_indices), minlength=num_items)
    return popularity_buckets(counts, [share, 1.0 - share]) == 0


def popularity_groups(train_counts: np.ndarray, num_groups: int = 10) -> np.ndarray:
    """`[num_items]` group of each item: 0 for the most popular `1/num_groups` of items, ...

    Items are ordered by training count (ties by index) and cut into `num_groups`
    groups of (nearly) equal numbers of items.
    """
    counts = np.asarray(train_counts)
    if not 1 <= num_groups <= len(counts):
        raise ValueError(f"`num_groups` must be in [1, {len(counts)}], got {num_groups}.")
    order = np.argsort(-counts, kind="stable")
    groups = np.empty(len(counts), dtype=np.int64)
    groups[order] = np.arange(len(counts)) * num_groups // len(counts)
    return groups
