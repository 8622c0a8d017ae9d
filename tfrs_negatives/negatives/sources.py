"""Negative sources: where the negatives of a retrieval step come from, and with what probability.

A source draws `count` candidates per step, shared by every query of the batch (as
in Mixed Negative Sampling, Yang et al. 2020, WWW), and knows the probability
`p_s(j)` that one of its draws is candidate `j`. The task combines sources: the
probability it corrects a logit with is that of the mixture (see
`tfrs_negatives.ops.mixture`).

Each source holds two variables a curriculum can change between steps without
retracing (`tfrs_negatives.callbacks.NegativeCurriculum`): `active_count` (how many
of its `count` draws are used; the rest are masked) and `weight` (its candidates'
terms in the softmax denominator are multiplied by it; 0 switches it off).
"""

import hashlib
import warnings
from typing import Any, Dict, Optional

from tfrs_negatives.estimators.base import SamplingProbabilityEstimator
from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.ops.mixture import log_miss_with_replacement

import numpy as np
import tensorflow as tf


class NegativeSource(tf.keras.layers.Layer):
    """Base class. Subclasses set `with_replacement` and implement `sample`/`draw_probability`.

    Args:
      count: Number of candidates drawn per step (static; the curriculum can use
        fewer through `active_count`).
      weight: Initial weight of the source's candidates.
    """

    with_replacement: bool = True
    #: True for the in-batch source, whose candidates are the batch's positives.
    in_batch: bool = False
    #: True for a source that gives its candidates' embeddings itself
    #: (`sample_embeddings`), without the candidate tower (`CrossBatch`).
    supplies_embeddings: bool = False
    #: True for a source whose draws follow the training stream's distribution, so
    #: its per-draw probability is the task's in-batch `q` (`CrossBatch`).
    follows_stream: bool = False

    def __init__(self, count: int = 0, weight: float = 1.0, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"`count` must be a non-negative integer, got {count!r}.")
        if not float(weight) >= 0.0 or not np.isfinite(weight):
            raise ValueError(f"`weight` must be finite and >= 0, got {weight!r}.")
        self.count = int(count)
        self.initial_weight = float(weight)
        self.active_count = self.add_weight(
            name="active_count",
            shape=[],
            dtype=tf.int32,
            trainable=False,
            initializer=tf.constant_initializer(self.count),
        )
        self.weight = self.add_weight(
            name="weight",
            shape=[],
            dtype=tf.float32,
            trainable=False,
            initializer=tf.constant_initializer(self.initial_weight),
        )

    def call(self, inputs: Any = None) -> tuple:
        """Draws this step's candidates: `(ids [count] int64, features [count, ...])`."""
        del inputs
        return self.sample()

    def sample(self) -> tuple:
        raise NotImplementedError

    def active_draws(self) -> tf.Tensor:
        """Scalar int32: the draws used this step, the first `active_draws()` of `count`."""
        return tf.convert_to_tensor(self.active_count)

    def check_ids(self, candidate_ids: Any, query_ids: Any = None) -> None:
        """Raises if raw ids (as the task receives them) are not of the kind the source holds.

        A dtype check, free at trace time. Sources without ids of their own
        (`InBatch`) accept any.

        Args:
          candidate_ids: `[N0]` int or string candidate ids.
          query_ids: Optional `[B]` query ids.

        Raises:
          TypeError: ids of the other kind than the source's catalogue.
        """
        del candidate_ids, query_ids

    def draw_probability(self, ids: tf.Tensor) -> tf.Tensor:
        """`[n]` probability that one draw of this source is each `[n]` int64 id."""
        raise NotImplementedError

    def log_miss_probability(self, ids: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
        """`[n]` log-probability that `draws` draws of this source all miss each id.

        With replacement: `draws * log(1 - p(j))`; subclasses drawing without
        replacement override it.
        """
        return log_miss_with_replacement(self.draw_probability(ids), draws)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(count=self.count, weight=self.initial_weight)
        for key in ("trainable", "dtype"):
            config.pop(key, None)
        return config


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class InBatch(NegativeSource):
    """The batch's other positives as negatives (TFRS's default), `p(j)` from the task's estimator.

    Listing it among the task's `negatives` keeps in-batch negatives; leaving it out
    uses the batch's candidates only as positives.
    """

    in_batch = True

    def __init__(self, weight: float = 1.0, **kwargs: Any) -> None:
        kwargs.pop("count", None)
        super().__init__(count=0, weight=weight, **kwargs)

    def sample(self) -> tuple:
        raise TypeError("InBatch draws no candidates: its candidates are the batch's positives.")


class _CatalogueSource(NegativeSource):
    """A source drawing from a `Catalogue`, with a `tf.random.Generator` of its own."""

    def __init__(
        self,
        catalogue: Any,
        count: int,
        weight: float = 1.0,
        seed: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(count=count, weight=weight, **kwargs)
        self.catalogue = as_catalogue(catalogue)
        self.seed = seed
        self.generator = (
            tf.random.Generator.from_non_deterministic_state()
            if seed is None
            else tf.random.Generator.from_seed(seed)
        )

    def check_ids(self, candidate_ids: Any, query_ids: Any = None) -> None:
        del query_ids
        if candidate_ids is not None:
            owner = f"{type(self).__name__} `{self.name}`"
            self.catalogue.check_ids(candidate_ids, "candidate_ids", owner=owner)

    def draw_probability(self, ids: tf.Tensor) -> tf.Tensor:
        index, found = self.catalogue.lookup(ids)
        return tf.where(found, tf.gather(self.pmf(), index), tf.zeros([], tf.float32))

    def pmf(self) -> tf.Tensor:
        """`[N]` probability of each catalogue row per draw."""
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(catalogue=self.catalogue.get_config(), seed=self.seed)
        return config


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class Uniform(_CatalogueSource):
    """`count` candidates drawn uniformly from the catalogue, shared by the batch.

    Without replacement the draw is a random permutation's first `count` indices
    (`tf.random.experimental.index_shuffle`, O(count) whatever the catalogue size);
    each candidate is then included with probability exactly `count / N`.

    Args:
      catalogue: A `Catalogue`, or ids / a lookup layer / a dataset to build one.
      count: Draws per step; without replacement at most the catalogue size.
      replace: Draw with replacement (default) or without.
      weight: Initial weight of the source.
      seed: Seed of the source's random generator (checkpointed with the model).
    """

    def __init__(
        self,
        catalogue: Any,
        count: int,
        replace: bool = True,
        weight: float = 1.0,
        seed: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(catalogue, count, weight, seed, **kwargs)
        self.replace = bool(replace)
        self.with_replacement = self.replace
        if not self.replace and self.count > self.catalogue.size:
            raise ValueError(
                f"`count` ({self.count}) must not exceed the catalogue size "
                f"({self.catalogue.size}) when drawing without replacement (`replace=False`)."
            )

    def sample(self) -> tuple:
        n = self.catalogue.size
        if self.replace:
            indices = self.generator.uniform([self.count], 0, n, dtype=tf.int64)
        else:
            seed = self.generator.uniform_full_int([2], dtype=tf.int64)
            indices = tf.random.experimental.index_shuffle(
                tf.range(self.count, dtype=tf.int64), seed, n - 1
            )
        return self.catalogue.gather(indices)

    def pmf(self) -> tf.Tensor:
        return tf.fill([self.catalogue.size], 1.0 / self.catalogue.size)

    def draw_probability(self, ids: tf.Tensor) -> tf.Tensor:
        _, found = self.catalogue.lookup(ids)  # no [N] table: every item has 1 / N
        return tf.where(found, 1.0 / self.catalogue.size, 0.0)

    def log_miss_probability(self, ids: tf.Tensor, draws: tf.Tensor) -> tf.Tensor:
        if self.replace:
            return super().log_miss_probability(ids, draws)
        _, found = self.catalogue.lookup(ids)
        share = tf.cast(draws, tf.float32) / self.catalogue.size
        return tf.where(found, tf.math.log1p(-tf.minimum(share, 1.0)), 0.0)

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(replace=self.replace)
        return config


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class Popularity(_CatalogueSource):
    """`count` candidates drawn with probability proportional to popularity^power.

    `p(j) = f_j^b / sum_k f_k^b` (b = `power`): 0 is uniform, 1 the unigram
    distribution, 0.75 word2vec's choice (Mikolov et al. 2013); see
    `shared/seeds/negative-sampling-recall-stage.md`. Draws use the cumulative
    distribution and a binary search: O(count log N) per step.

    Frequencies `f` come from either

    * `counts` aligned with the catalogue: data, like the catalogue. The
      distribution is held in tensors, not variables, so a checkpoint never
      replaces it; the checkpoint records its fingerprint instead, and restoring a
      checkpoint of a source built from other counts (or another power) warns
      (`RuntimeWarning`) and keeps the counts this source was built from; or
    * an `estimator`: the distribution follows it. A learning estimator (e.g.
      `StreamingFrequencyEstimator`, which knows nothing before training) is
      re-read inside the training step, at the source's first draw and then
      every `refresh_every_n_steps` draws (one `[N]` read of the estimator and a
      cumulative sum; a checkpoint carries the distribution with the
      estimator's state). A fixed one (exact counts, a static table) is read at
      construction. `refresh()` re-reads it at any time, eagerly.

    Args:
      catalogue: A `Catalogue`, or ids / a lookup layer / a dataset to build one.
      count: Draws per step (with replacement).
      power: Exponent `b >= 0`.
      counts: `[N]` non-negative counts aligned with the catalogue's ids.
      estimator: Alternatively, a `SamplingProbabilityEstimator` giving `f`.
      refresh_every_n_steps: With a learning estimator, re-read it every this
        many draws of the source (one draw per task call, evaluation included).
      weight: Initial weight of the source.
      seed: Seed of the source's random generator.

    Raises:
      ValueError: `power < 0`, counts of the wrong length, negative or NaN, or
        zero for a catalogue item (it could never be drawn, yet is listed), or
        `refresh_every_n_steps < 1`.
    """

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        catalogue: Any,
        count: int,
        power: float = 0.75,
        counts: Optional[Any] = None,
        estimator: Optional[SamplingProbabilityEstimator] = None,
        weight: float = 1.0,
        seed: Optional[int] = None,
        refresh_every_n_steps: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(catalogue, count, weight, seed, **kwargs)
        if not float(power) >= 0.0 or not np.isfinite(power):
            raise ValueError(f"`power` must be finite and >= 0, got {power!r}.")
        if (counts is None) == (estimator is None):
            raise ValueError("Give exactly one of `counts` and `estimator` to Popularity.")
        if estimator is not None and not isinstance(estimator, SamplingProbabilityEstimator):
            raise TypeError(
                "`estimator` must be a SamplingProbabilityEstimator, got "
                f"{type(estimator).__name__}."
            )
        if not isinstance(refresh_every_n_steps, (int, np.integer)) or refresh_every_n_steps < 1:
            raise ValueError(
                f"`refresh_every_n_steps` must be an integer >= 1, got {refresh_every_n_steps!r}."
            )
        self.power = float(power)
        self.estimator = estimator
        self.counts = None if counts is None else np.asarray(counts, np.float64).reshape(-1)
        self.refresh_every_n_steps = int(refresh_every_n_steps)
        self.tracks_estimator = estimator is not None and estimator.updates_in_training
        if estimator is not None:
            self.probabilities = self._state("probabilities", tf.float32)
            self.cdf = self._state("cdf", tf.float32)
        if self.tracks_estimator:
            self.draws = self._state("draws", tf.int64, shape=[])
        self.refresh()
        if self.counts is not None:
            self.counts_guard = _DistributionGuard(self)

    def _state(self, name: str, dtype: tf.DType, shape: Optional[list] = None) -> tf.Variable:
        """A zero-initialised variable; replicas compute the same value, the first's is kept."""
        return self.add_weight(
            name=name,
            shape=[self.catalogue.size] if shape is None else shape,
            dtype=dtype,
            trainable=False,
            initializer="zeros",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    def refresh(self) -> None:
        """Recomputes the distribution (eagerly) from the counts or the estimator's state."""
        if self.counts is not None:
            frequency = self.counts
            if frequency.shape != (self.catalogue.size,):
                raise ValueError(
                    f"`counts` must have one value per catalogue item ({self.catalogue.size}), "
                    f"got shape {frequency.shape}."
                )
        else:
            frequency = self.estimator.probability(self.catalogue.ids).numpy().astype(np.float64)
        if not np.all(np.isfinite(frequency)) or (frequency < 0).any():
            raise ValueError("`counts` must be finite and non-negative; got NaN/inf or < 0.")
        weights = frequency**self.power
        if (weights <= 0).any():
            zero = np.flatnonzero(weights <= 0)
            raise ValueError(
                f"`counts` give probability zero to {zero.size} catalogue items (e.g. rows "
                f"{zero[:5].tolist()}), which could then never be drawn: add a pseudo-count "
                "(e.g. counts + 1), use power=0, or drop them from the catalogue."
            )
        pmf = weights / weights.sum()
        cdf = np.cumsum(pmf)
        cdf[-1] = 1.0
        if self.counts is not None:
            self.probabilities = tf.constant(pmf.astype(np.float32))
            self.cdf = tf.constant(cdf.astype(np.float32))
        else:
            self.probabilities.assign(pmf.astype(np.float32))
            self.cdf.assign(cdf.astype(np.float32))

    @property
    def distribution_fingerprint(self) -> str:
        """Digest (16 hex digits) of the float32 distribution `p` over the catalogue."""
        data = np.asarray(self.probabilities, np.float32).astype("<f4").tobytes()
        return hashlib.sha256(data).hexdigest()[:16]

    def _tracked_cdf(self) -> tf.Tensor:
        """The cdf, after re-reading the estimator on every `refresh_every_n_steps`-th draw."""
        step = self.draws.assign_add(1) - 1

        def reread() -> tf.Tensor:
            frequency = tf.cast(self.estimator.probability(self.catalogue.ids), tf.float64)
            weights = tf.pow(frequency, self.power)
            pmf = weights / tf.reduce_sum(weights)
            cdf = tf.concat([tf.cumsum(pmf)[:-1], tf.ones([1], tf.float64)], axis=0)
            with tf.control_dependencies(
                [
                    self.probabilities.assign(tf.cast(pmf, tf.float32)),
                    self.cdf.assign(tf.cast(cdf, tf.float32)),
                ]
            ):
                return tf.constant(True)

        done = tf.cond(
            tf.equal(step % self.refresh_every_n_steps, 0), reread, lambda: tf.constant(False)
        )
        with tf.control_dependencies([done]):
            return tf.identity(self.cdf)

    def sample(self) -> tuple:
        cdf = self._tracked_cdf() if self.tracks_estimator else self.cdf
        u = self.generator.uniform([self.count], dtype=tf.float32)
        indices = tf.searchsorted(cdf, u, side="right", out_type=tf.int64)
        return self.catalogue.gather(tf.minimum(indices, self.catalogue.size - 1))

    def pmf(self) -> tf.Tensor:
        return tf.convert_to_tensor(self.probabilities)  # a variable (estimator) or a constant

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            power=self.power,
            counts=None if self.counts is None else self.counts.tolist(),
            estimator=None if self.estimator is None else tf.keras.layers.serialize(self.estimator),
            refresh_every_n_steps=self.refresh_every_n_steps,
        )
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Popularity":
        config = dict(config)
        if config.get("estimator") is not None:
            config["estimator"] = tf.keras.layers.deserialize(config["estimator"])
        return cls(**config)


class _DistributionGuard(tf.__internal__.tracking.Trackable):
    """Checkpoints a count-based `Popularity`'s distribution fingerprint, not its distribution.

    On restore it compares the checkpoint's fingerprint with the source's: a
    different one means the checkpoint was trained with other counts (or another
    power); the source keeps its own and a `RuntimeWarning` says so.
    """

    def __init__(self, source: "Popularity") -> None:
        self._source_name = source.name
        self.fingerprint = source.distribution_fingerprint

    def _serialize_to_tensors(self) -> Dict[str, tf.Tensor]:
        return {"fingerprint": tf.constant(self.fingerprint)}

    def _restore_from_tensors(self, restored_tensors: Dict[str, tf.Tensor]) -> Any:
        restored = restored_tensors["fingerprint"]
        if not tf.executing_eagerly():  # traced into a SavedModel's restore function
            return tf.no_op()
        restored = restored.numpy().decode("utf-8")
        if restored != self.fingerprint:
            warnings.warn(
                f"The checkpoint restored into Popularity `{self._source_name}` was trained "
                f"with another distribution (fingerprint {restored}: other `counts` or `power`) "
                f"than this source was built from ({self.fingerprint}). The source keeps its "
                "own counts (counts are data, not checkpointed); rebuild it with the "
                "checkpoint's counts to continue with those.",
                RuntimeWarning,
                stacklevel=2,
            )
        return tf.no_op()


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class FullCatalogue(Uniform):
    """Every catalogue item, every step: the full softmax, as a reference for small catalogues.

    A uniform draw of the whole catalogue without replacement, in catalogue order:
    each item is included with probability 1, so it needs no correction.
    """

    def __init__(self, catalogue: Any, weight: float = 1.0, **kwargs: Any) -> None:
        catalogue = as_catalogue(catalogue)
        for key in ("count", "replace", "seed"):
            kwargs.pop(key, None)
        super().__init__(catalogue, catalogue.size, replace=False, weight=weight, seed=0, **kwargs)

    def sample(self) -> tuple:
        return self.catalogue.ids, self.catalogue.features

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        for key in ("count", "replace", "seed"):
            config.pop(key, None)
        return config


def as_catalogue(catalogue: Any) -> Catalogue:
    """A `Catalogue` from a catalogue, ids, a lookup layer or a dataset."""
    if isinstance(catalogue, Catalogue):
        return catalogue
    if isinstance(catalogue, dict) and "ids" in catalogue:  # from get_config
        return Catalogue(catalogue["ids"], catalogue.get("features"))
    if isinstance(catalogue, tf.data.Dataset):
        return Catalogue.from_dataset(catalogue)
    if hasattr(catalogue, "get_vocabulary"):
        return Catalogue.from_lookup(catalogue)
    if catalogue is None or np.size(catalogue) == 0:
        raise ValueError("`catalogue` is empty: a source needs at least one candidate to draw.")
    return Catalogue(catalogue)
