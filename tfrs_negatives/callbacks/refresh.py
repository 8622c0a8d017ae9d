"""`RefreshHardNegatives`: re-mine the hard-negative table as the model trains (ANCE-style)."""

import time
import warnings
from typing import Callable, List, Optional, Sequence

from tfrs_negatives.mining.miner import Miner
from tfrs_negatives.mining.table import HardNegativeTable

import numpy as np
import tensorflow as tf


class RefreshHardNegatives(tf.keras.callbacks.Callback):
    """Re-embeds the catalogue, rebuilds the index and re-mines every N epochs or steps.

    ANCE (Xiong et al. 2021, ICLR) refreshes its negatives from an index of the
    model being trained, asynchronously; here the refresh runs between steps and
    replaces the table in one assignment. If a refresh fails, the previous table
    stays, training continues, and a warning says why (`failures` counts them).

    Item-side tables (anchors = the catalogue's items) are mined around each item's
    own embedding, dropping the item itself. Query-side tables (anchors = query ids)
    are mined around `query_tower(anchor ids)`, dropping `excluded[a]` (the
    anchor's known positives as catalogue rows, e.g. from `positives_by_anchor`).

    Args:
      miner: A `BruteForceMiner` or `ScaNNMiner` over the catalogue.
      table: The `HardNegativeTable` the `Mined` source reads.
      candidate_tower: The model's candidate tower (called on catalogue features).
      query_tower: For query-side tables, the model's query tower.
      excluded: For query-side tables, catalogue rows to drop per anchor.
      every_n_epochs: Refresh at the start of every n-th epoch (epoch 0 included).
      every_n_steps: Or every n optimizer steps (overrides `every_n_epochs`).
      refresh_at_start: Mine once before the first step.
    """

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        miner: Miner,
        table: HardNegativeTable,
        candidate_tower: Callable,
        query_tower: Optional[Callable] = None,
        excluded: Optional[Sequence[np.ndarray]] = None,
        every_n_epochs: int = 1,
        every_n_steps: Optional[int] = None,
        refresh_at_start: bool = True,
    ) -> None:
        super().__init__()
        if table.window != miner.window:
            raise ValueError(
                f"`table` has a window of {table.window} entries but `miner` mines "
                f"{miner.window} ([{miner.min_rank}, {miner.max_rank}))."
            )
        if every_n_epochs < 1 or (every_n_steps is not None and every_n_steps < 1):
            raise ValueError("`every_n_epochs` and `every_n_steps` must be >= 1.")
        table.bind_catalogue(miner.catalogue, "the miner's catalogue (`miner.catalogue`)")
        self.miner, self.table = miner, table
        self.candidate_tower, self.query_tower = candidate_tower, query_tower
        self.excluded = excluded
        self.item_side = _same_ids(table.anchors.ids, miner.catalogue.ids)
        if not self.item_side and query_tower is None:
            raise ValueError(
                "The table's anchors are not the catalogue's items, so it is query-side: "
                "pass `query_tower` to embed the anchors."
            )
        self.every_n_epochs, self.every_n_steps = int(every_n_epochs), every_n_steps
        self.refresh_at_start = bool(refresh_at_start)
        self.failures = 0
        self.timings: List[float] = []
        self.empty_anchors: List[int] = []

    def refresh(self) -> bool:
        """Mines now; returns whether the table was replaced."""
        start = time.perf_counter()
        try:
            embeddings = self.miner.index(self.candidate_tower)
            if self.item_side:
                neighbours, counts = self.miner.mine(
                    embeddings, anchor_rows=np.arange(len(embeddings))
                )
            else:
                anchors = self._embed_queries()
                neighbours, counts = self.miner.mine(anchors, excluded=self.excluded)
            self.table.assign(neighbours, counts)
        except Exception as err:  # noqa: BLE001 - any failure keeps the old table
            self.failures += 1
            warnings.warn(
                f"Hard-negative refresh failed ({type(err).__name__}: {err}); keeping the "
                f"previous table (refreshed {int(self.table.refreshes.numpy())} times).",
                RuntimeWarning,
                stacklevel=2,
            )
            return False
        self.timings.append(time.perf_counter() - start)
        self.empty_anchors.append(int((counts == 0).sum()))
        return True

    def _embed_queries(self) -> np.ndarray:
        ids = self.table.anchors.raw_ids
        size = int(ids.shape[0])
        parts = [
            np.asarray(self.query_tower(ids[i : i + self.miner.batch_size]), np.float32)
            for i in range(0, size, self.miner.batch_size)
        ]
        return np.concatenate(parts)

    def on_train_begin(self, logs=None) -> None:
        if self.refresh_at_start:
            self.refresh()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        if self.every_n_steps is None and epoch > 0 and epoch % self.every_n_epochs == 0:
            self.refresh()

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        if self.every_n_steps is None:
            return
        step = int(self.model.optimizer.iterations.numpy())
        if step > 0 and step % self.every_n_steps == 0:
            self.refresh()


def positives_by_anchor(query_ids, item_ids, table: HardNegativeTable, miner: Miner):
    """Per-anchor catalogue rows of the items each query interacted with.

    Args:
      query_ids: `[n]` query ids of the training interactions.
      item_ids: `[n]` their item ids.
      table: A query-side table (its anchors are query ids).
      miner: The miner (its catalogue maps item ids to rows).

    Returns:
      A list of `[k_a]` int64 arrays, one per anchor of `table`.
    """
    from tfrs_negatives.ops.ids import to_int64_ids  # noqa: PLC0415

    table.check_ids(query_ids, "query_ids")
    miner.catalogue.check_ids(item_ids, "item_ids", owner="the miner")
    anchor_rows, found_a = table.anchors.lookup(to_int64_ids(query_ids, "query_ids"))
    item_rows, found_i = miner.catalogue.lookup(to_int64_ids(item_ids, "item_ids"))
    keep = (found_a & found_i).numpy()
    anchor_rows, item_rows = anchor_rows.numpy()[keep], item_rows.numpy()[keep]
    order = np.argsort(anchor_rows, kind="stable")
    anchor_rows, item_rows = anchor_rows[order], item_rows[order]
    bounds = np.searchsorted(anchor_rows, np.arange(table.anchors.size + 1))
    return [np.unique(item_rows[bounds[a] : bounds[a + 1]]) for a in range(table.anchors.size)]


def _same_ids(a: tf.Tensor, b: tf.Tensor) -> bool:
    return bool(a.shape == b.shape and np.array_equal(a.numpy(), b.numpy()))
