"""`HardNegativeTable`: each anchor's mined neighbours, as variables the training step reads."""

from typing import Any, Dict, Optional

from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.ops.id_kind import check_id_kind
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class HardNegativeTable(tf.keras.layers.Layer):
    """Mined neighbours of each anchor, as variables the training step reads.

    `neighbours[a]` holds catalogue rows in rank order (padded with -1) and
    `counts[a]` how many are valid. A refresh (`assign`) replaces both between
    steps; checkpoints carry them.

    Rows mean something only in the catalogue they index (the miner's): the table
    records that catalogue's size and order-sensitive fingerprint the first time
    one is bound to it (`bind_catalogue`: the `Mined` source reading it and
    `RefreshHardNegatives` filling it both do), and refuses another catalogue, a
    reordered one (its hard negatives would silently become random) or a subset
    (rows beyond it).

    Args:
      anchor_ids: `[A]` distinct ids of the anchors: the catalogue's ids for
        item-side mining (neighbours of the positive item), query ids for
        query-side mining.
      window: Entries per anchor (`max_rank - min_rank` of the miner).
      catalogue_size: Size of the catalogue the rows index, if known (a config
        holds it); otherwise recorded by the first `bind_catalogue`.
      catalogue_fingerprint: That catalogue's `Catalogue.fingerprint`.
    """

    def __init__(
        self,
        anchor_ids: Any,
        window: int,
        catalogue_size: Optional[int] = None,
        catalogue_fingerprint: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"`window` must be a positive integer, got {window!r}.")
        if (catalogue_size is None) != (catalogue_fingerprint is None):
            raise ValueError(
                "Give both `catalogue_size` and `catalogue_fingerprint` or neither, got "
                f"{catalogue_size!r} and {catalogue_fingerprint!r}."
            )
        self.anchors = anchor_ids if isinstance(anchor_ids, Catalogue) else Catalogue(anchor_ids)
        self.window = int(window)
        self.catalogue_size = None if catalogue_size is None else int(catalogue_size)
        self.catalogue_fingerprint = catalogue_fingerprint
        self._bound_by = "the table's config"
        size = self.anchors.size
        self.neighbours = self.add_weight(
            name="neighbours",
            shape=[size, self.window],
            dtype=tf.int64,
            trainable=False,
            initializer=tf.constant_initializer(-1),
        )
        self.counts = self.add_weight(
            name="counts", shape=[size], dtype=tf.int32, trainable=False, initializer="zeros"
        )
        self.refreshes = self.add_weight(
            name="refreshes", shape=[], dtype=tf.int64, trainable=False, initializer="zeros"
        )

    def bind_catalogue(self, catalogue: Catalogue, by: str) -> None:
        """Records the catalogue the rows index, or checks it is the one recorded.

        Args:
          catalogue: The catalogue whose rows the neighbours are.
          by: Who binds it, for the error (e.g. "the `catalogue` of Mined `mined`").

        Raises:
          ValueError: another catalogue is recorded (other size, or same size in
            another order).
        """
        if self.catalogue_fingerprint is None:
            self.catalogue_size = catalogue.size
            self.catalogue_fingerprint = catalogue.fingerprint
            self._bound_by = by
            return
        if catalogue.fingerprint == self.catalogue_fingerprint:
            return
        if catalogue.size == self.catalogue_size:
            how = "the same number of ids in another order (its hard negatives would be random)"
        else:
            how = f"{catalogue.size} ids instead of {self.catalogue_size}"
        who = by[:1].upper() + by[1:]
        raise ValueError(
            f"{who} is not the catalogue the HardNegativeTable `{self.name}` indexes: expected "
            f"{self.catalogue_size} ids with fingerprint {self.catalogue_fingerprint} (recorded "
            f"from {self._bound_by}), got {how}, fingerprint {catalogue.fingerprint}. The "
            "table's entries are rows of the miner's catalogue: give the Mined source and the "
            "miner the same catalogue (e.g. `Mined(table, miner.catalogue, ...)`)."
        )

    def assign(
        self,
        neighbours: np.ndarray,
        counts: np.ndarray,
        catalogue: Optional[Catalogue] = None,
    ) -> None:
        """Replaces the table (checked first, then written together).

        Args:
          neighbours: `[A, window]` catalogue rows in rank order, padded with -1.
          counts: `[A]` valid entries per anchor, in `[0, window]`.
          catalogue: Optional catalogue the rows index (the miner's), checked
            against the recorded one (`bind_catalogue`).

        Raises:
          ValueError: wrong shapes, counts out of range, another catalogue, or
            rows outside the recorded catalogue.
        """
        if catalogue is not None:
            self.bind_catalogue(catalogue, "the `catalogue` given to assign")
        neighbours = np.asarray(neighbours, np.int64)
        counts = np.asarray(counts, np.int32)
        expected = (self.anchors.size, self.window)
        if neighbours.shape != expected or counts.shape != (self.anchors.size,):
            raise ValueError(
                f"`neighbours` must have shape {expected} and `counts` ({expected[0]},), got "
                f"{neighbours.shape} and {counts.shape}."
            )
        if (counts < 0).any() or (counts > self.window).any():
            raise ValueError(f"`counts` must lie in [0, {self.window}].")
        self._check_rows(neighbours, counts)
        self.neighbours.assign(neighbours)
        self.counts.assign(counts)
        self.refreshes.assign_add(1)

    def _check_rows(self, neighbours: np.ndarray, counts: np.ndarray) -> None:
        """Valid entries must be rows of the recorded catalogue, `[0, catalogue_size)`."""
        valid = np.arange(self.window)[None, :] < counts[:, None]
        rows = neighbours[valid]
        limit = self.catalogue_size
        bad = rows[(rows < 0) | (rows >= (limit if limit is not None else np.inf))]
        if bad.size:
            expected = f"[0, {limit})" if limit is not None else ">= 0"
            raise ValueError(
                f"`neighbours` must hold catalogue rows in {expected} within each anchor's "
                f"`counts`, got {bad.size} outside, e.g. {bad[:3].tolist()}: were they mined "
                "over another catalogue?"
            )

    def check_ids(self, ids: Any, name: str = "anchor_ids", owner: Optional[str] = None) -> None:
        """Raises if raw anchor `ids` are not of the kind of the table's anchor ids."""
        what = f"HardNegativeTable `{self.name}`" if owner is None else owner
        check_id_kind(ids, self.anchors.id_kind, name, f"the anchors of {what}")

    def rows(self, anchor_ids: tf.Tensor):
        """`(row [n] int64, found [n] bool)` of `[n]` int64 anchor ids."""
        return self.anchors.lookup(anchor_ids)

    def call(self, anchor_ids: tf.Tensor) -> tuple:
        """The mined entries of `[n]` anchor ids (int32/int64/string, as `anchor_ids`).

        Returns:
          `(neighbours [n, window] int64, counts [n] int32)`: catalogue rows in rank
          order padded with -1, and how many are valid; an anchor not in the table
          gets a row of -1 and count 0.
        """
        self.check_ids(anchor_ids, "anchor_ids")
        row, found = self.rows(to_int64_ids(tf.reshape(anchor_ids, [-1]), "anchor_ids"))
        neighbours = tf.where(found[:, None], tf.gather(self.neighbours, row), -1)
        counts = tf.where(found, tf.gather(self.counts, row), 0)
        return neighbours, counts

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            anchor_ids=self.anchors.get_config()["ids"],
            window=self.window,
            catalogue_size=self.catalogue_size,
            catalogue_fingerprint=self.catalogue_fingerprint,
        )
        return config
