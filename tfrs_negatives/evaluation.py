"""Exact recall@k over a whole catalogue, overall and split into head and tail items."""

from typing import Dict, List, Sequence

from tfrs_negatives.popularity import head_items, popularity_groups

import numpy as np

__all__ = [
    "head_items",
    "popularity_groups",
    "recall_at_k",
    "recall_by_group",
    "recall_from_ranks",
    "seen_items",
    "true_item_ranks",
]


def recall_at_k(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
    query_embeddings: np.ndarray,
    item_embeddings: np.ndarray,
    true_items: np.ndarray,
    ks: Sequence[int] = (10, 50, 100),
    head: np.ndarray | None = None,
    batch_size: int = 4096,
    excluded: Sequence[np.ndarray] | None = None,
) -> Dict[str, float]:
    """Share of test interactions whose true item ranks in the top k of the catalogue.

    The rank of the true item is the number of catalogue items scoring strictly
    higher (dot product), so ties count in the item's favour, as in TFRS'
    `FactorizedTopK` with exact search.

    Args:
      query_embeddings: `[n, d]` one query per test interaction.
      item_embeddings: `[num_items, d]` the whole catalogue.
      true_items: `[n]` index of each interaction's item in the catalogue.
      ks: Cut-offs; each must not exceed the catalogue size.
      head: Optional `[num_items]` boolean mask; adds `head_recall@k` and
        `tail_recall@k` (interactions whose true item is in the head / not).
      batch_size: Queries scored at a time.
      excluded: Optional, per test interaction, catalogue indices left out of its
        ranking (e.g. the items its user saw in training: `seen_items`); the
        interaction's own true item always stays.

    Returns:
      Dict of `recall@k` (and head/tail) values, plus the counts `n`, `n_head`.
    """
    num_items = item_embeddings.shape[0]
    if max(ks) > num_items:
        raise ValueError(f"`ks` must not exceed the catalogue size {num_items}, got {list(ks)}.")
    true_items = np.asarray(true_items)
    ranks = true_item_ranks(query_embeddings, item_embeddings, true_items, batch_size, excluded)
    return recall_from_ranks(ranks, true_items, ks, head)


def recall_from_ranks(
    ranks: np.ndarray,
    true_items: np.ndarray,
    ks: Sequence[int] = (10, 50, 100),
    head: np.ndarray | None = None,
) -> Dict[str, float]:
    """`recall_at_k`'s dict from the true items' ranks (`true_item_ranks`).

    Args:
      ranks: `[n]` rank of each test interaction's true item.
      true_items: `[n]` index of each interaction's item in the catalogue.
      ks: Cut-offs.
      head: Optional `[num_items]` boolean mask of head items.
    """
    true_items = np.asarray(true_items)
    result: Dict[str, float] = {"n": float(len(ranks))}
    groups = {"": np.ones(len(ranks), dtype=bool)}
    if head is not None:
        in_head = np.asarray(head)[true_items]
        groups.update({"head_": in_head, "tail_": ~in_head})
        result["n_head"] = float(in_head.sum())
    for prefix, members in groups.items():
        for k in ks:
            hits = ranks[members] < k
            result[f"{prefix}recall@{k}"] = float(hits.mean()) if hits.size else float("nan")
    return result


def true_item_ranks(
    query_embeddings: np.ndarray,
    item_embeddings: np.ndarray,
    true_items: np.ndarray,
    batch_size: int = 4096,
    excluded: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """`[n]` rank of each true item: the number of catalogue items scoring strictly higher.

    Args:
      query_embeddings: `[n, d]` one query per test interaction.
      item_embeddings: `[num_items, d]` the whole catalogue.
      true_items: `[n]` index of each interaction's item in the catalogue.
      batch_size: Queries scored at a time.
      excluded: Optional `n` arrays of catalogue indices that do not count against
        the interaction (they leave its ranking); its true item always stays.
    """
    true_items = np.asarray(true_items)
    if len(query_embeddings) != len(true_items):
        raise ValueError(
            f"`query_embeddings` has {len(query_embeddings)} rows but `true_items` "
            f"{len(true_items)}."
        )
    if excluded is not None and len(excluded) != len(true_items):
        raise ValueError(
            f"`excluded` must hold one array per interaction ({len(true_items)}), got "
            f"{len(excluded)}."
        )
    ranks = np.empty(len(true_items), dtype=np.int64)
    for start in range(0, len(true_items), batch_size):
        scores = query_embeddings[start : start + batch_size] @ item_embeddings.T
        rows = np.arange(scores.shape[0])
        true_scores = scores[rows, true_items[start : start + batch_size]]
        above = scores > true_scores[:, None]
        if excluded is not None:
            for row in rows:
                above[row, excluded[start + row]] = False  # the true item is never above
        ranks[start : start + batch_size] = above.sum(axis=1)
    return ranks


def seen_items(
    query_users: np.ndarray, train_users: np.ndarray, train_items: np.ndarray
) -> List[np.ndarray]:
    """For each query, the catalogue indices its user interacted with in training.

    Args:
      query_users: `[n]` user of each test interaction.
      train_users: `[m]` user of each training interaction.
      train_items: `[m]` catalogue index of each training interaction's item.

    Returns:
      `n` int64 arrays (shared between queries of one user), for `excluded=`.
    """
    by_user: Dict[object, list] = {}
    for user, item in zip(np.asarray(train_users).tolist(), np.asarray(train_items).tolist()):
        by_user.setdefault(user, []).append(item)
    arrays = {user: np.unique(np.array(items, np.int64)) for user, items in by_user.items()}
    empty = np.zeros(0, np.int64)
    return [arrays.get(user, empty) for user in np.asarray(query_users).tolist()]


def recall_by_group(ranks: np.ndarray, groups: np.ndarray, k: int, num_groups: int) -> np.ndarray:
    """`[num_groups]` recall@k of the interactions whose true item is in each group (NaN if none).

    Args:
      ranks: `[n]` ranks of the true items (`true_item_ranks`).
      groups: `[n]` group of each interaction's true item.
      k: Cut-off.
      num_groups: Number of groups.
    """
    hits = np.bincount(groups, weights=(ranks < k).astype(np.float64), minlength=num_groups)
    totals = np.bincount(groups, minlength=num_groups).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)
