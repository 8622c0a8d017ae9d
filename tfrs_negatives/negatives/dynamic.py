"""`Dynamic`: each row's negatives chosen in-graph among candidates scored by the current towers.

Dynamic negative sampling (DNS; Zhang et al. SIGIR 2013 "Optimizing top-n
collaborative filtering via dynamic negative item sampling"; RecBole's `dynamic`
sampler is the PyTorch peer): draw `M` candidates, score them with the current
towers, keep the hardest `k` of each row, or sample `k` by the softmax of their
scores. No index, no cache: the step's own tower embeds the candidates.
"""

from typing import Any, Dict, Optional

from tfrs_negatives.negatives.cache import _check_integer, _check_no_replicas
from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.negatives.known_positives import KnownPositives
from tfrs_negatives.negatives.row_draws import RowContext, RowDraw, gumbel_max_draws
from tfrs_negatives.negatives.sources import NegativeSource, as_catalogue
from tfrs_negatives.ops.masking import mask_value

import numpy as np
import tensorflow as tf

SELECTIONS = ("top", "softmax")


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class Dynamic(NegativeSource):
    """`keep` negatives per row, chosen among `candidates` scored by the current towers.

    Each call draws `M = candidates` catalogue items from the proposal `r` (uniform,
    or `counts^power`; with replacement), embeds them once with the call's
    `candidate_tower` (their gradient flows) and scores them against every query
    (`[B, M]`, the selection itself is out of the gradient). The candidates are
    shared by the batch's rows; each row chooses its own:

    * `select="top"`: the `keep` highest-scoring distinct candidates (DNS). These
      are chosen, not sampled: each enters the loss as one certain term, as a mined
      negative, with no probability correction;
    * `select="softmax"`: `keep` draws, with replacement, by Gumbel-max from
      `w_ic = exp(s_ic / T) / r(c)` over the candidates (sampling-importance-
      resampling, Rubin 1988; Gumbel-max as `Cache`'s). Their target is the
      catalogue softmax `p_i(j) = exp(s_ij / T) / Z_i`, with `Z_i` estimated from
      the same candidates, `Z_i ~ (1 / M) sum_c exp(s_ic / T) / r(c)` (kept out of
      the gradient). The task corrects each column by this `p_i(j)` as part of the
      mixture (`tfrs_negatives.tasks.row_mixture`; `probability_of` evaluates it at
      any column of the row from its raw score). `T = temperature`.

    Excluded from the choice (and given probability 0): the row's positive, the
    query's `known_positives`, and with `margin` the candidates scoring above
    `s_pos - margin |s_pos|` (likely false negatives; the positive-aware hardness
    of AHNS, Lai et al. AAAI 2024, bounds hardness by the positive's score the same
    way). A row left with fewer than `keep` allowed candidates masks the rest.

    Cost per step: the tower on `M` items, a `[B, M]` matmul, `keep` top-k or
    Gumbel passes over `[B, M]`. Not supported under a `tf.distribute` strategy
    with several replicas yet.

    Args:
      catalogue: A `Catalogue`, or ids / a lookup layer / a dataset to build one.
      candidates: `M`, candidates drawn per step (shared by the rows).
      keep: `k`, negatives kept per row (`<= candidates` with `select="top"`).
      select: "top" or "softmax".
      temperature: Temperature of the softmax selection (of the raw scores).
      margin: Optional margin `>= 0` excluding candidates near the positive.
      known_positives: Optional `KnownPositives` of the training data (the task
        call then needs `query_ids`).
      counts: Optional `[N]` non-negative counts aligned with the catalogue: the
        proposal is `counts^power` (normalised); uniform when None.
      power: Exponent of `counts`.
      weight: Initial weight of the source.
      seed: Seed of the source's random generator.
    """

    per_row = True
    side = "scores"

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        catalogue: Any,
        candidates: int,
        keep: int,
        select: str = "top",
        temperature: float = 1.0,
        margin: Optional[float] = None,
        known_positives: Optional[KnownPositives] = None,
        counts: Optional[Any] = None,
        power: float = 1.0,
        weight: float = 1.0,
        seed: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("count", None)  # from a config: it is `keep`
        super().__init__(count=keep, weight=weight, **kwargs)
        _check_integer(candidates, "candidates", 1)
        _check_integer(keep, "keep", 1)
        if select not in SELECTIONS:
            raise ValueError(f"`select` must be one of {SELECTIONS}, got {select!r}.")
        if select == "top" and keep > candidates:
            raise ValueError(
                f'`keep` ({keep}) must be <= `candidates` ({candidates}) with select="top": '
                "a row keeps distinct candidates."
            )
        _check_positive_finite(temperature, "temperature")
        if margin is not None and (not np.isfinite(margin) or float(margin) < 0.0):
            raise ValueError(f"`margin` must be None or finite and >= 0, got {margin!r}.")
        if not np.isfinite(power) or float(power) < 0.0:
            raise ValueError(f"`power` must be finite and >= 0, got {power!r}.")
        self.catalogue: Catalogue = as_catalogue(catalogue)
        self.candidates = int(candidates)
        self.select = select
        self.samples_rows = select == "softmax"
        self.temperature = float(temperature)
        self.margin = None if margin is None else float(margin)
        self.known_positives = known_positives
        self.power = float(power)
        self.counts = None if counts is None else _checked_counts(counts, self.catalogue.size)
        self.seed = seed
        self.generator = (
            tf.random.Generator.from_non_deterministic_state()
            if seed is None
            else tf.random.Generator.from_seed(seed)
        )
        self._log_proposal = tf.constant(self.log_proposal(), tf.float32)
        self._cdf = tf.constant(np.cumsum(np.exp(self.log_proposal())), tf.float32)

    def log_proposal(self) -> np.ndarray:
        """`[N]` float64 `log r(j)` of the candidate proposal (-inf where `r(j) = 0`)."""
        n = self.catalogue.size
        if self.counts is None:
            return np.full(n, -np.log(n))
        weights = np.where(self.counts > 0, self.counts, 0.0) ** self.power
        weights = np.where(self.counts > 0, weights, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(weights / weights.sum())

    def check_ids(self, candidate_ids: Any, query_ids: Any = None) -> None:
        owner = f"Dynamic `{self.name}`"
        if candidate_ids is not None:
            self.catalogue.check_ids(candidate_ids, "candidate_ids", owner=owner)
        if self.known_positives is not None:
            self.known_positives.check_ids(query_ids, candidate_ids)

    def proposed_rows(self) -> tf.Tensor:
        """`[M]` int64 catalogue rows drawn from the proposal, with replacement."""
        n = self.catalogue.size
        if self.counts is None:
            return self.generator.uniform([self.candidates], 0, n, dtype=tf.int64)
        u = self.generator.uniform([self.candidates], 0.0, 1.0, dtype=tf.float32)
        rows = tf.searchsorted(self._cdf, u * self._cdf[-1], side="right")
        return tf.minimum(tf.cast(rows, tf.int64), n - 1)

    def allowed(self, context: RowContext, ids: tf.Tensor, raw_scores: tf.Tensor) -> tf.Tensor:
        """`[B, n]` bool: the row may choose the ids (`[B, n]` int64, raw scores `[B, n]`)."""
        allowed = tf.not_equal(ids, context.positive_ids[:, None])
        if self.known_positives is not None:
            known = self.known_positives.contains(context.query_ids[:, None], ids)
            allowed = tf.logical_and(allowed, tf.logical_not(known))
        if self.margin is not None:
            positive = tf.cast(context.positive_scores, tf.float32)
            threshold = positive - self.margin * tf.abs(positive)
            allowed = tf.logical_and(allowed, raw_scores <= threshold[:, None])
        return allowed

    def draw_rows(self, context: RowContext) -> RowDraw:
        """The step's `keep` negatives per row among `candidates` scored by the current tower.

        Args:
          context: The step (`RowContext`): queries, positives, tower, query ids.

        Returns:
          `RowDraw`; with `select="softmax"` its `probabilities` are `p_i(j)`.
        """
        self._check_context(context)
        rows = self.proposed_rows()
        ids, features = self.catalogue.gather(rows)
        pool = tf.cast(context.candidate_tower(features), tf.float32)  # [M, D]
        queries = tf.stop_gradient(tf.cast(context.queries, tf.float32))
        scores = tf.matmul(queries, tf.stop_gradient(pool), transpose_b=True)  # [B, M]
        b = tf.shape(scores)[0]
        pool_ids = tf.broadcast_to(ids[None, :], [b, self.candidates])
        allowed = self.allowed(context, pool_ids, scores)
        if self.select == "top":
            index, valid = _top_distinct(scores, allowed, ids, self.count)
            return RowDraw(tf.gather(ids, index), tf.gather(pool, index), valid)
        return self._softmax_draw(context, rows, ids, pool, scores, allowed)

    def _softmax_draw(  # noqa: PLR0913 (the pool, its scores and what is allowed)
        self,
        context: RowContext,
        rows: tf.Tensor,
        ids: tf.Tensor,
        pool: tf.Tensor,
        scores: tf.Tensor,
        allowed: tf.Tensor,
    ) -> RowDraw:
        """`keep` SIR draws per row, with the estimated catalogue-softmax probability."""
        log_r = tf.gather(self._log_proposal, rows)  # [M]
        weights = scores / self.temperature - log_r[None, :]
        logits = tf.where(allowed, weights, mask_value())
        index = gumbel_max_draws(self.generator, logits, self.count)  # [B, k]
        any_allowed = tf.reduce_any(allowed, axis=1)
        log_z = tf.reduce_logsumexp(tf.where(allowed, weights, -np.inf), axis=1)
        log_z = tf.stop_gradient(tf.where(any_allowed, log_z - np.log(self.candidates), 0.0))
        valid = tf.gather(allowed, index, batch_dims=1)
        chosen_scores = tf.gather(scores, index, batch_dims=1)
        probabilities = tf.where(
            valid, tf.minimum(tf.exp(chosen_scores / self.temperature - log_z[:, None]), 1.0), 0.0
        )

        def probability_of(any_ids: tf.Tensor, raw_scores: tf.Tensor) -> tf.Tensor:
            raw = tf.stop_gradient(tf.cast(raw_scores, tf.float32))
            index_of, known = self.catalogue.lookup(tf.reshape(any_ids, [-1]))
            log_r_at = tf.reshape(
                tf.gather(self._log_proposal, index_of), tf.shape(any_ids)
            )
            drawable = tf.logical_and(
                tf.reshape(known, tf.shape(any_ids)), tf.math.is_finite(log_r_at)
            )
            drawable = tf.logical_and(drawable, self.allowed(context, any_ids, raw))
            drawable = tf.logical_and(drawable, any_allowed[:, None])
            p = tf.exp(tf.minimum(raw / self.temperature - log_z[:, None], 0.0))
            return tf.where(drawable, p, 0.0)

        return RowDraw(
            tf.gather(ids, index),
            tf.gather(pool, index),
            valid,
            tf.stop_gradient(probabilities),
            probability_of,
        )

    def _check_context(self, context: RowContext) -> None:
        if context.candidate_tower is None:
            raise ValueError(
                f"`candidate_tower` is required by Dynamic `{self.name}`: it embeds the "
                "step's candidates."
            )
        if self.known_positives is not None and context.query_ids is None:
            raise ValueError(
                f"`query_ids` is required by Dynamic `{self.name}`, whose `known_positives` "
                "filter looks up (query, item) pairs: pass the [B] query ids to the task call."
            )
        _check_no_replicas("Dynamic")

    def call(self, inputs: Any = None) -> tuple:
        raise TypeError(
            "Dynamic chooses per row from the step's scores: the task calls `draw_rows` with "
            "the step's queries and tower."
        )

    def draw_probability(self, ids: tf.Tensor) -> tf.Tensor:
        raise TypeError(
            "Dynamic's probabilities are per row (`RowDraw.probabilities`), not per id."
        )

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.pop("count", None)
        config.update(
            catalogue=self.catalogue.get_config(),
            candidates=self.candidates,
            keep=self.count,
            select=self.select,
            temperature=self.temperature,
            margin=self.margin,
            known_positives=None
            if self.known_positives is None
            else self.known_positives.get_config(),
            counts=None if self.counts is None else self.counts.tolist(),
            power=self.power,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Dynamic":
        config = dict(config)
        if config.get("known_positives") is not None:
            config["known_positives"] = KnownPositives(**config["known_positives"])
        return cls(**config)


def _top_distinct(scores: tf.Tensor, allowed: tf.Tensor, ids: tf.Tensor, keep: int) -> tuple:
    """`(index [B, keep] int32, valid [B, keep])`: each row's highest allowed distinct candidates.

    A candidate drawn twice is taken once (its first copy); a row with fewer than
    `keep` allowed candidates has its remaining slots invalid.
    """
    m = tf.shape(ids)[0]
    _, group = tf.unique(ids, out_idx=tf.int32)
    first = tf.math.unsorted_segment_min(tf.range(m), group, m)
    distinct = tf.equal(tf.gather(first, group), tf.range(m))  # [M]
    usable = tf.logical_and(allowed, distinct[None, :])
    _, index = tf.math.top_k(tf.where(usable, scores, mask_value()), k=keep)
    return index, tf.gather(usable, index, batch_dims=1)


def _check_positive_finite(value: Any, name: str) -> None:
    if not np.isfinite(value) or not float(value) > 0.0:
        raise ValueError(f"`{name}` must be finite and > 0, got {value!r}.")


def _checked_counts(counts: Any, size: int) -> np.ndarray:
    values = np.asarray(counts, np.float64).reshape(-1)
    if values.shape[0] != size:
        raise ValueError(
            f"`counts` must hold one count per catalogue item ({size}), got {values.shape[0]}."
        )
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("`counts` must be finite and >= 0.")
    if not values.sum() > 0:
        raise ValueError("`counts` must not all be zero.")
    return values
