"""`Mined`: hard negatives drawn per example from a mined table, inside the training step."""

from typing import Any, Dict, Optional

from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.negatives.hard_negative_table import HardNegativeTable
from tfrs_negatives.negatives.known_positives import KnownPositives
from tfrs_negatives.negatives.sources import NegativeSource, as_catalogue
from tfrs_negatives.ops.ids import to_int64_ids

import tensorflow as tf

SAMPLING = ("random", "top")


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class Mined(NegativeSource):
    """`count` hard negatives per example, drawn from its anchor's mined window.

    Unlike the shared sources, these are negatives of their own row only: the task
    adds `[B, count]` logits. They carry no log-Q term: they are not draws from a
    distribution over the catalogue whose probability would correct a softmax
    estimate, but deliberately hard extra terms (EBR's use), whose weight the
    curriculum can ramp. In-graph filters: the row's positive, the query's known
    positives (`known_positives`), and, with `margin`, candidates scoring above
    `s_pos - margin * |s_pos|` (NV-Retriever's positive-aware filter, Moreira et al.
    2024). An anchor with no admissible entry gets uniform catalogue negatives
    instead; `fallbacks` counts them.

    The table's entries are rows of the miner's catalogue, so `catalogue` must be
    that catalogue, in the same order: the source binds it to the table
    (`HardNegativeTable.bind_catalogue`), which raises if the table was bound to
    another one (by `RefreshHardNegatives`, a config, or another source).

    Args:
      table: The `HardNegativeTable` a miner fills (see `RefreshHardNegatives`).
      catalogue: The catalogue the table's rows index (the miner's).
      count: Negatives per example.
      side: `"item"` (anchors are the positives' ids) or `"query"` (query ids).
      sample: `"random"` (uniform within the window) or `"top"` (the first `count`).
      known_positives: Optional `KnownPositives` of the training data.
      margin: Optional positive-aware margin in `[0, 1)`.
      weight: Initial weight of the source.
      seed: Seed of the source's random generator.
    """

    per_row = True

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        table: HardNegativeTable,
        catalogue: Any,
        count: int,
        side: str = "item",
        sample: str = "random",
        known_positives: Optional[KnownPositives] = None,
        margin: Optional[float] = None,
        weight: float = 1.0,
        seed: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(count=count, weight=weight, **kwargs)
        if not isinstance(table, HardNegativeTable):
            raise TypeError(f"`table` must be a HardNegativeTable, got {type(table).__name__}.")
        if side not in ("item", "query"):
            raise ValueError(f"`side` must be 'item' or 'query', got {side!r}.")
        if count > table.window:
            raise ValueError(
                f"`count` ({count}) must not exceed the mined window ({table.window} entries)."
            )
        init_per_row_state(self, sample, known_positives, margin, seed)  # checked before binding
        self.table = table
        self.catalogue: Catalogue = as_catalogue(catalogue)
        table.bind_catalogue(self.catalogue, f"the `catalogue` of Mined `{self.name}`")
        self.side = side

    def check_ids(self, candidate_ids: Any, query_ids: Any = None) -> None:
        """Raises if raw ids are not of the kinds the catalogue, table and known positives hold.

        Args:
          candidate_ids: `[N0]` candidate ids as the task receives them.
          query_ids: Optional `[B]` query ids (checked against a query-side
            table's anchors and the known positives' queries).

        Raises:
          TypeError: ids of the other kind (string for int, or the reverse).
        """
        owner = f"Mined `{self.name}`"
        if candidate_ids is not None:
            self.catalogue.check_ids(candidate_ids, "candidate_ids", owner=owner)
        anchors = candidate_ids if self.side == "item" else query_ids
        if anchors is not None:
            name = "candidate_ids" if self.side == "item" else "query_ids"
            self.table.check_ids(anchors, name, owner=f"the table of {owner}")
        if self.known_positives is not None:
            self.known_positives.check_ids(query_ids, candidate_ids)

    def sample_rows(self, anchor_ids: tf.Tensor):
        """Draws `count` catalogue rows per anchor.

        Args:
          anchor_ids: `[B]` int64 anchor ids.

        Returns:
          `(ids [B, count] int64, features [B * count, ...], fallback [B] bool,
          valid [B, count] bool)`; every draw of a window is valid (a window shorter
          than `count` repeats its last entry, as before).
        """
        row, found = self.table.rows(anchor_ids)
        counts = tf.where(found, tf.gather(self.table.counts, row), 0)
        windows = tf.gather(self.table.neighbours, row)
        rows, fallback = draw_from_windows(
            self.generator, windows, counts, self.count, self.sample_mode, self.catalogue.size
        )
        self.fallbacks.assign_add(tf.reduce_sum(tf.cast(fallback, tf.int64)))
        ids, features = self.catalogue.gather(tf.reshape(rows, [-1]))
        b = tf.shape(anchor_ids)[0]
        valid = tf.ones([b, self.count], tf.bool)
        return tf.reshape(ids, [b, self.count]), features, fallback, valid

    def call(self, anchor_ids: tf.Tensor) -> tuple:
        """Draws `count` rows for each of `[B]` anchor ids (int32/int64/string), as `sample_rows`.

        Returns:
          `(ids [B, count] int64, features [B * count, ...], fallback [B] bool)`.
        """
        if anchor_ids is None:
            raise ValueError(
                "Mined must be called with `anchor_ids` ([B] item or query ids), got None: "
                "its negatives are drawn per example."
            )
        self.table.check_ids(anchor_ids, "anchor_ids", owner=f"the table of Mined `{self.name}`")
        return self.sample_rows(to_int64_ids(tf.reshape(anchor_ids, [-1]), "anchor_ids"))[:3]

    def draw_probability(self, ids: tf.Tensor) -> tf.Tensor:
        # Per-row extras are not part of the shared mixture (no log-Q term).
        return tf.zeros(tf.shape(ids), tf.float32)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            table=tf.keras.layers.serialize(self.table),
            catalogue=self.catalogue.get_config(),
            side=self.side,
            sample=self.sample_mode,
            known_positives=None
            if self.known_positives is None
            else self.known_positives.get_config(),
            margin=self.margin,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Mined":
        config = dict(config)
        config["table"] = tf.keras.layers.deserialize(config["table"])
        if config.get("known_positives") is not None:
            config["known_positives"] = KnownPositives(**config["known_positives"])
        return cls(**config)


def window_slots(
    generator: tf.random.Generator, counts: tf.Tensor, count: int, mode: str
) -> tf.Tensor:
    """`[B, count]` int32 slots of windows with `counts` valid entries each.

    `"top"`: the first `count` slots; `"random"`: uniform over each window's valid
    entries (with replacement). Slots are clipped to the last valid entry.
    """
    b = tf.shape(counts)[0]
    if mode == "top":
        slots = tf.broadcast_to(tf.range(count)[None, :], [b, count])
    else:
        u = generator.uniform([b, count])
        slots = tf.cast(tf.floor(u * tf.cast(counts[:, None], tf.float32)), tf.int32)
    return tf.minimum(slots, tf.maximum(counts[:, None] - 1, 0))


def draw_from_windows(  # noqa: PLR0913 (the window and how to draw from it)
    generator: tf.random.Generator,
    windows: tf.Tensor,
    counts: tf.Tensor,
    count: int,
    mode: str,
    catalogue_size: int,
):
    """`count` catalogue rows per row of `windows` (`[B, W]` rows, the first `counts` valid).

    A row with no valid entry gets uniform catalogue rows instead.

    Returns:
      `(rows [B, count] int64, fallback [B] bool)`.
    """
    slots = window_slots(generator, counts, count, mode)
    mined = tf.gather(windows, slots, batch_dims=1)
    fallback = counts <= 0
    b = tf.shape(counts)[0]
    uniform = generator.uniform([b, count], 0, catalogue_size, dtype=tf.int64)
    return tf.where(fallback[:, None], uniform, mined), fallback


def init_per_row_state(  # noqa: PLR0913 (the per-row options)
    source: NegativeSource,
    sample: str,
    known_positives: Optional[KnownPositives],
    margin: Optional[float],
    seed: Optional[int],
) -> None:
    """Checks and sets what every per-row source holds: how it draws, its filters, its
    random generator and its `fallbacks` counter (`Mined`, `FromFeatures`)."""
    if sample not in SAMPLING:
        raise ValueError(f"`sample` must be one of {SAMPLING}, got {sample!r}.")
    if margin is not None and not 0.0 <= float(margin) < 1.0:
        raise ValueError(f"`margin` must be in [0, 1) or None, got {margin!r}.")
    source.sample_mode = sample
    source.known_positives = known_positives
    source.margin = None if margin is None else float(margin)
    source.seed = seed
    source.generator = (
        tf.random.Generator.from_non_deterministic_state()
        if seed is None
        else tf.random.Generator.from_seed(seed)
    )
    source.fallbacks = source.add_weight(
        name="fallbacks",
        shape=[],
        dtype=tf.int64,
        trainable=False,
        initializer="zeros",
        aggregation=tf.VariableAggregation.SUM,
    )
