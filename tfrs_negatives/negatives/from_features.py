"""`FromFeatures`: hard negatives each example carries in its features (mined offline)."""

from typing import Any, Dict, Optional

from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.negatives.known_positives import KnownPositives
from tfrs_negatives.negatives.mined import draw_from_windows, init_per_row_state
from tfrs_negatives.negatives.sources import NegativeSource, as_catalogue
from tfrs_negatives.ops.ids import to_int64_ids

import tensorflow as tf

#: The padding of a row of mined ids: -1 for int ids, the empty string for string ids.
INT_PADDING = -1
STRING_PADDING = b""


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class FromFeatures(NegativeSource):
    """`count` hard negatives per example, drawn from the `[B, W]` ids the batch carries.

    The per-example counterpart of `Mined`: instead of a `HardNegativeTable` in the
    model, each example holds its mined window as a feature (e.g. added by
    `tfrs_negatives.data.with_mined_negatives` from the files `tfrs-negatives mine`
    writes), and the task call passes it as `negative_ids`. Nothing of catalogue size
    lives in the model beyond the catalogue the tower embeds from.

    Like `Mined`, these are extra terms of their own row with no log-Q correction, and
    share its filters (the row's positive, `known_positives`, `margin`). Padding
    entries (`INT_PADDING` / `STRING_PADDING`) are never drawn; with `sample="top"`
    the draws beyond a row's valid entries are masked out of the softmax; a row with
    no valid entry gets uniform catalogue negatives (`fallbacks` counts them). An id
    that is neither padding nor in the catalogue is an error.

    Args:
      catalogue: The catalogue the ids are looked up in (features for the tower).
      count: Negatives per example (at most the width `W` of `negative_ids`).
      sample: `"random"` (uniform over the row's valid entries) or `"top"` (the
        first `count`, in the order the feature holds them: rank order).
      known_positives: Optional `KnownPositives` of the training data.
      margin: Optional positive-aware margin in `[0, 1)` (see `Mined`).
      weight: Initial weight of the source.
      seed: Seed of the source's random generator.
    """

    per_row = True
    side = "features"

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        catalogue: Any,
        count: int,
        sample: str = "random",
        known_positives: Optional[KnownPositives] = None,
        margin: Optional[float] = None,
        weight: float = 1.0,
        seed: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(count=count, weight=weight, **kwargs)
        if count < 1:
            raise ValueError(f"`count` must be >= 1, got {count!r}.")
        self.catalogue: Catalogue = as_catalogue(catalogue)
        init_per_row_state(self, sample, known_positives, margin, seed)

    def check_ids(self, candidate_ids: Any, query_ids: Any = None) -> None:
        """Raises if raw candidate ids are not of the catalogue's kind (see `Mined`)."""
        owner = f"FromFeatures `{self.name}`"
        if candidate_ids is not None:
            self.catalogue.check_ids(candidate_ids, "candidate_ids", owner=owner)
        if self.known_positives is not None:
            self.known_positives.check_ids(query_ids, candidate_ids)

    def window_rows(self, negative_ids: Any):
        """`(rows [B, W] int64, counts [B] int32)`: catalogue rows, valid entries first.

        Raises:
          InvalidArgumentError: an id that is neither padding nor in the catalogue.
        """
        self.catalogue.check_ids(negative_ids, "negative_ids", owner=f"FromFeatures `{self.name}`")
        raw = tf.convert_to_tensor(negative_ids)
        if raw.shape.rank != 2:
            raise ValueError(
                f"`negative_ids` must be a [B, W] tensor of ids (padded with {INT_PADDING} or "
                f"{STRING_PADDING!r}), got shape {raw.shape}."
            )
        if raw.shape[1] is not None and raw.shape[1] < 1:
            raise ValueError("`negative_ids` must have at least one column, got width 0.")
        padding = STRING_PADDING if raw.dtype == tf.string else INT_PADDING
        valid = tf.not_equal(raw, tf.constant(padding, raw.dtype))
        flat = to_int64_ids(tf.reshape(raw, [-1]), "negative_ids")
        index, found = self.catalogue.lookup(flat)
        unknown = tf.logical_and(tf.reshape(valid, [-1]), tf.logical_not(found))
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unknown)),
            [
                f"`negative_ids` of FromFeatures `{self.name}` hold ids not in its catalogue "
                "(neither padding nor catalogue ids), e.g.:",
                tf.boolean_mask(tf.reshape(raw, [-1]), unknown)[:3],
            ],
        )
        with tf.control_dependencies([check]):
            rows = tf.where(valid, tf.reshape(index, tf.shape(raw)), -1)
        order = tf.argsort(tf.cast(tf.logical_not(valid), tf.int32), axis=1, stable=True)
        counts = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        return tf.gather(rows, order, batch_dims=1), counts

    def sample_rows(self, negative_ids: Any):
        """Draws `count` catalogue rows per row of `[B, W]` `negative_ids`.

        Returns:
          `(ids [B, count] int64, features [B * count, ...], fallback [B] bool,
          valid [B, count] bool)`: `valid` is False for `"top"` draws beyond a row's
          valid entries (masked by the task).
        """
        rows, counts = self.window_rows(negative_ids)
        drawn, fallback = draw_from_windows(
            self.generator, rows, counts, self.count, self.sample_mode, self.catalogue.size
        )
        self.fallbacks.assign_add(tf.reduce_sum(tf.cast(fallback, tf.int64)))
        ids, features = self.catalogue.gather(tf.reshape(drawn, [-1]))
        b = tf.shape(rows)[0]
        valid = tf.ones([b, self.count], tf.bool)
        if self.sample_mode == "top":
            within = tf.range(self.count)[None, :] < counts[:, None]
            valid = tf.logical_or(within, fallback[:, None])
        return tf.reshape(ids, [b, self.count]), features, fallback, valid

    def call(self, negative_ids: Any) -> tuple:
        """`(ids [B, count] int64, features [B * count, ...], fallback [B] bool)`, as `Mined`."""
        return self.sample_rows(negative_ids)[:3]

    def draw_probability(self, ids: tf.Tensor) -> tf.Tensor:
        # Per-row extras are not part of the shared mixture (no log-Q term).
        return tf.zeros(tf.shape(ids), tf.float32)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            catalogue=self.catalogue.get_config(),
            sample=self.sample_mode,
            known_positives=None
            if self.known_positives is None
            else self.known_positives.get_config(),
            margin=self.margin,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "FromFeatures":
        config = dict(config)
        if config.get("known_positives") is not None:
            config["known_positives"] = KnownPositives(**config["known_positives"])
        return cls(**config)
