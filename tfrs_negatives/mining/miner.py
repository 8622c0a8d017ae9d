"""Hard-negative miners: search the catalogue around each anchor, keep a rank window.

Hard negatives carry the gradient, but the nearest neighbours of a positive are
often unlabelled positives (false negatives). Facebook's EBR (Huang et al. 2020,
KDD) found negatives sampled from ranks 101-500 of the retrieved list best, and hard
negatives useful only as a supplement to easy ones; hence the rank window
`[min_rank, max_rank)` (defaults 100 and 500, EBR's; scale them to the catalogue:
a 2,000-item catalogue has no rank 500). Ranks count only admissible candidates
(0 = the most similar), after dropping the anchor itself and the anchor's known
positives.
"""

from typing import Callable, Optional, Sequence

from tfrs_negatives.mining.search import ExactSearch, ScaNNSearch
from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.negatives.sources import as_catalogue

import numpy as np
import tensorflow as tf


class Miner:
    """Indexes the catalogue through the candidate tower and mines rank windows.

    Args:
      catalogue: The candidates (a `Catalogue`, ids, a lookup layer or a dataset).
      search: An `ExactSearch` or `ScaNNSearch`.
      min_rank: First rank kept (0-based, among admissible candidates).
      max_rank: One past the last rank kept.
      batch_size: Catalogue rows embedded, and anchors searched, at a time.
      progress: Show a progress bar while indexing and mining.
    """

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        catalogue,
        search,
        min_rank: int = 100,
        max_rank: int = 500,
        batch_size: int = 8192,
        progress: bool = False,
    ) -> None:
        self.catalogue: Catalogue = as_catalogue(catalogue)
        if not 0 <= int(min_rank) < int(max_rank):
            raise ValueError(
                f"The rank window needs 0 <= `min_rank` < `max_rank`, got [{min_rank}, {max_rank})."
            )
        if max_rank > self.catalogue.size:
            raise ValueError(
                f"`max_rank` ({max_rank}) is beyond the catalogue ({self.catalogue.size} items): "
                "choose a window inside it."
            )
        self.min_rank, self.max_rank = int(min_rank), int(max_rank)
        self.search = search
        self.batch_size = int(batch_size)
        self.progress = bool(progress)
        self.embeddings: Optional[np.ndarray] = None

    @property
    def window(self) -> int:
        """Number of ranks in the window."""
        return self.max_rank - self.min_rank

    def index(self, candidate_tower: Callable) -> np.ndarray:
        """Embeds the catalogue with `candidate_tower` and (re)builds the search index."""
        parts = []
        size = self.catalogue.size
        for start in range(0, size, self.batch_size):
            rows = tf.range(start, min(size, start + self.batch_size), dtype=tf.int64)
            _, features = self.catalogue.gather(rows)
            parts.append(np.asarray(candidate_tower(features), np.float32))
            self._report("indexing", min(size, start + self.batch_size), size)
        embeddings = np.concatenate(parts)
        if embeddings.ndim != 2 or embeddings.shape[0] != size:
            raise ValueError(
                f"`candidate_tower` must return [n, D] embeddings, got shape {embeddings.shape}."
            )
        if not np.all(np.isfinite(embeddings)):
            raise ValueError("`candidate_tower` returned NaN or infinite embeddings.")
        if isinstance(self.search, ScaNNSearch):
            self.search.build(embeddings, k=self.max_rank)
        else:
            self.search.build(embeddings)
        self.embeddings = embeddings
        return embeddings

    def mine(
        self,
        anchor_embeddings: np.ndarray,
        anchor_rows: Optional[np.ndarray] = None,
        excluded: Optional[Sequence[np.ndarray]] = None,
    ):
        """Mines the window of each anchor.

        Args:
          anchor_embeddings: `[A, D]` anchors (catalogue items for item-side mining,
            queries for query-side).
          anchor_rows: Optional `[A]` catalogue row of each anchor (item-side): the
            anchor itself is dropped.
          excluded: Optional per-anchor arrays of catalogue rows to drop (known
            positives).

        Returns:
          `(neighbours [A, window] int64, counts [A] int32)`: catalogue rows in rank
          order, padded with -1; `counts` admissible entries per anchor.
        """
        if self.embeddings is None:
            raise RuntimeError("Call index(candidate_tower) before mine().")
        anchors = np.asarray(anchor_embeddings, np.float32)
        if anchors.ndim != 2 or anchors.shape[1] != self.embeddings.shape[1]:
            raise ValueError(
                f"`anchor_embeddings` must have shape [A, {self.embeddings.shape[1]}] (the "
                f"index's dimension), got {anchors.shape}."
            )
        a = len(anchors)
        if excluded is not None and len(excluded) != a:
            raise ValueError(
                f"`excluded` must hold one array per anchor ({a}), got {len(excluded)}."
            )
        neighbours = np.full([a, self.window], -1, np.int64)
        counts = np.zeros([a], np.int32)
        for start in range(0, a, self.batch_size):
            stop = min(a, start + self.batch_size)
            rows = None if anchor_rows is None else np.asarray(anchor_rows[start:stop])
            ex = None if excluded is None else excluded[start:stop]
            # Enough neighbours that the window survives the drops (per batch, so one
            # anchor with many known positives does not widen every search).
            extra = (rows is not None) + max((len(e) for e in ex or ()), default=0)
            k = min(self.catalogue.size, self.max_rank + extra)
            found, _ = self.search.search(anchors[start:stop], k)
            neighbours[start:stop], counts[start:stop] = self._window(found, rows, ex)
            self._report("mining", stop, a)
        return neighbours, counts

    def _window(self, found: np.ndarray, rows, excluded):
        """Keeps admissible ranks `[min_rank, max_rank)` of each row of `found`."""
        n = self.catalogue.size
        ids = found.astype(np.int32) if n < 2**31 else found
        admissible = ids >= 0
        if rows is not None:
            admissible &= ids != np.asarray(rows).astype(ids.dtype)[:, None]
        if excluded is not None:
            admissible &= ~_excluded_mask(ids, excluded, n)
        rank = np.cumsum(admissible, axis=1, dtype=np.int32)  # 1-based rank
        keep = admissible & (rank > self.min_rank) & (rank <= self.max_rank)
        counts = keep.sum(axis=1, dtype=np.int32)
        if (counts == self.window).all():  # the usual case: every window is full
            return found[keep].reshape(len(found), self.window), counts
        out = np.full([len(found), self.window], -1, np.int64)
        r, c = np.nonzero(keep)
        out[r, rank[r, c] - self.min_rank - 1] = found[r, c]
        return out, counts

    def _report(self, what: str, done: int, total: int) -> None:
        """Advances a Keras progress bar (one per pass) when `progress` is on."""
        if not self.progress:
            return
        bar = getattr(self, "_bar", None)
        if bar is None or bar.target != total or getattr(self, "_bar_name", "") != what:
            print(what)
            bar = self._bar = tf.keras.utils.Progbar(total, unit_name=what)
            self._bar_name = what
        bar.update(done)
        if done >= total:
            self._bar = None


def _excluded_mask(ids: np.ndarray, excluded, n: int, max_broadcast: int = 64) -> np.ndarray:
    """`[A, k]` True where `ids[a, j]` is in `excluded[a]` (catalogue rows)."""
    lengths = np.fromiter(map(len, excluded), np.int64, len(excluded))
    width = int(lengths.max(initial=0))
    if width == 0:
        return np.zeros(ids.shape, bool)
    if width <= max_broadcast:  # few per anchor: one comparison per column
        pad = np.full([len(ids), width], -2, ids.dtype)
        pad[np.arange(width) < lengths[:, None]] = np.concatenate(excluded)
        hit = ids == pad[:, :1]
        for j in range(1, width):
            hit |= ids == pad[:, j : j + 1]
        return hit
    keys = np.concatenate(excluded).astype(np.int64)  # many: sorted (anchor, row) keys
    keys += np.repeat(np.arange(len(ids), dtype=np.int64) * n, lengths)
    keys.sort()
    flat = ids.astype(np.int64) + np.arange(len(ids), dtype=np.int64)[:, None] * n
    return keys[np.minimum(np.searchsorted(keys, flat), len(keys) - 1)] == flat


class BruteForceMiner(Miner):
    """Exact miner (the reference): dot products with the whole catalogue, exact top-k."""

    def __init__(
        self,
        catalogue,
        min_rank: int = 100,
        max_rank: int = 500,
        batch_size: int = 1024,
        progress: bool = False,
    ) -> None:
        super().__init__(
            catalogue, ExactSearch(batch_size), min_rank, max_rank, batch_size, progress
        )


class ScaNNMiner(Miner):
    """Approximate miner on a ScaNN index (tree + anisotropic hashing + exact re-scoring).

    ScaNN is imported when the index is built; without it the error names the
    install command. `scann_options` go to `ScaNNSearch` (num_leaves,
    leaves_to_search, reorder, ...).
    """

    def __init__(
        self,
        catalogue,
        min_rank: int = 100,
        max_rank: int = 500,
        batch_size: int = 8192,
        progress: bool = False,
        **scann_options,
    ) -> None:
        super().__init__(
            catalogue, ScaNNSearch(**scann_options), min_rank, max_rank, batch_size, progress
        )
