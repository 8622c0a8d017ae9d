"""Input checks of the retrieval task: errors that name the argument, expected and received."""

import math
from typing import Any, Optional, Sequence

from tfrs_negatives.estimators.base import SamplingProbabilityEstimator
from tfrs_negatives.negatives.sources import NegativeSource

import numpy as np
import tensorflow as tf


def check_embeddings(query_embeddings: tf.Tensor, candidate_embeddings: tf.Tensor):
    """Checks ranks and dims; returns `(num_queries, num_candidates)` as scalar tensors."""
    if query_embeddings.shape.rank not in (None, 2, 3):
        raise ValueError(
            "`query_embeddings` must have shape [B, D] or [B, heads, D], got shape "
            f"{query_embeddings.shape}."
        )
    if candidate_embeddings.shape.rank not in (None, 2):
        raise ValueError(
            "`candidate_embeddings` must have shape [N, D], got shape "
            f"{candidate_embeddings.shape}."
        )
    check_dimension(query_embeddings, candidate_embeddings, "candidate_embeddings")
    b, n = query_embeddings.shape[0], candidate_embeddings.shape[0]
    if b is not None and n is not None and n < b:
        raise ValueError(
            f"`candidate_embeddings` must have at least as many rows as `query_embeddings` "
            f"({b}: one positive per query), got {n}."
        )
    return tf.shape(query_embeddings)[0], tf.shape(candidate_embeddings)[0]


def check_dimension(query_embeddings: tf.Tensor, embeddings: tf.Tensor, name: str) -> None:
    """Raises unless `embeddings` has the queries' embedding dimension."""
    q_dim, c_dim = query_embeddings.shape[-1], embeddings.shape[-1]
    if q_dim is not None and c_dim is not None and q_dim != c_dim:
        raise ValueError(
            f"`{name}` must have the embedding dimension of `query_embeddings` ({q_dim}), "
            f"got {c_dim} (shapes {query_embeddings.shape} and {embeddings.shape})."
        )


def check_length(values: tf.Tensor, expected: tf.Tensor, name: str) -> None:
    """Raises (statically when shapes are known) unless `values` has `expected` rows."""
    static_expected = tf.get_static_value(expected)
    if values.shape.rank == 1 and values.shape[0] is not None and static_expected is not None:
        if values.shape[0] != static_expected:
            raise ValueError(
                f"`{name}` must have {static_expected} entries (one per row), "
                f"got {values.shape[0]}."
            )
        return
    tf.debugging.assert_equal(
        tf.size(values), expected, message=f"`{name}` must have one entry per row"
    )


def checked_probabilities(given: tf.Tensor, num_candidates: tf.Tensor) -> tf.Tensor:
    """`candidate_sampling_probability` as float32, checked to be `[N]` in `(0, 1]`."""
    given = tf.cast(given, tf.float32)
    if given.shape.rank is not None and given.shape.rank != 1:
        raise ValueError(
            "`candidate_sampling_probability` must have shape [num_candidates], "
            f"got shape {given.shape}."
        )
    check_length(given, num_candidates, "candidate_sampling_probability")
    check = tf.debugging.assert_equal(
        tf.reduce_all((given > 0.0) & (given <= 1.0)),
        True,
        message="`candidate_sampling_probability` must lie in (0, 1] with no NaN",
    )
    with tf.control_dependencies([check]):
        return tf.identity(given)


def finite(values: tf.Tensor, what: str) -> tf.Tensor:
    """`values`, failing at run time (`InvalidArgumentError`) if they hold NaN or inf."""
    message = (
        f"{what} hold NaN or infinity (`check_finite=True`): look at the tower that "
        "made them, its inputs and the learning rate"
    )
    return tf.debugging.check_numerics(values, message)


def check_frequency(frequency: Any) -> None:
    """Raises unless `frequency` is None or a tfrs_negatives estimator."""
    if frequency is not None and not isinstance(frequency, SamplingProbabilityEstimator):
        raise TypeError(
            "`frequency` must be a tfrs_negatives SamplingProbabilityEstimator "
            "(StreamingFrequencyEstimator, ExactFrequencyEstimator, StaticProbabilities) "
            f"or None, got {type(frequency).__name__}."
        )


def check_negatives(negatives: list) -> None:
    """Raises unless `negatives` lists sources, at most one `InBatch`, weights summing > 0."""
    if not negatives:
        raise ValueError(
            "`negatives` must list at least one source (e.g. [InBatch()]), got an empty list."
        )
    for source in negatives:
        if not isinstance(source, NegativeSource):
            raise TypeError(
                "`negatives` must hold tfrs_negatives.negatives sources (InBatch, Uniform, "
                "Popularity, FullCatalogue, Mined, FromFeatures, CrossBatch, Cache, Dynamic), "
                f"got {type(source).__name__}."
            )
    if sum(s.in_batch for s in negatives) > 1:
        raise ValueError("`negatives` lists InBatch more than once.")
    weights = [s.initial_weight for s in negatives]
    if not sum(weights) > 0:
        raise ValueError(
            f"The weights of `negatives` must sum to a positive number, got {weights}: with "
            "every source at weight 0 there is no negative."
        )


def check_choice(
    value: Optional[str], name: str, choices: Sequence[str], allow_none: bool = False
) -> None:
    """Raises unless `value` is one of `choices` (or None when `allow_none`)."""
    if value is None and allow_none:
        return
    if value not in choices:
        extra = " or None" if allow_none else ""
        raise ValueError(f"`{name}` must be one of {tuple(choices)}{extra}, got {value!r}.")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number, got {value!r}.")
    return float(value)


def check_correction_strength(value: Any) -> None:
    """Raises unless the correction's multiplier is a finite number >= 0."""
    strength = _number(value, "correction_strength")
    if not math.isfinite(strength) or strength < 0.0:
        raise ValueError(
            "`correction_strength` must be a finite number >= 0 (1 is the unbiased "
            f"correction, 0 none), got {value!r}."
        )


def check_open_unit(value: Any, name: str) -> None:
    """Raises unless `0 < value < 1`."""
    if not 0.0 < _number(value, name) < 1.0:
        raise ValueError(f"`{name}` must be in (0, 1), got {value!r}.")


def check_closed_unit(value: Any, name: str) -> None:
    """Raises unless `0 <= value <= 1`."""
    if not 0.0 <= _number(value, name) <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1], got {value!r}.")


def check_temperature(value: Any) -> None:
    """Raises unless the temperature is None or a finite number > 0."""
    if value is None:
        return
    temperature = _number(value, "temperature")
    if not (math.isfinite(temperature) and temperature > 0.0):
        raise ValueError(f"`temperature` must be a finite number > 0 or None, got {value!r}.")


def check_flag(value: Any, name: str, allow_none: bool = False) -> None:
    """Raises unless `value` is True or False (or None when `allow_none`)."""
    if value is None and allow_none:
        return
    if not isinstance(value, bool):
        extra = ", or None" if allow_none else ""
        raise TypeError(f"`{name}` must be True or False{extra}, got {value!r}.")


def check_stride(value: Any) -> None:
    """Raises unless the diagnostics' row stride is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`diagnostics_stride` must be an integer >= 1, got {value!r}.")


def gbce_num_items(num_items: Optional[int], sampled_loss: str, sampled: Sequence) -> Optional[int]:
    """The catalogue size gBCE needs: given, or the first sampled source's catalogue's."""
    if num_items is not None or sampled_loss != "gbce":
        return num_items
    with_catalogue = [s for s in sampled if getattr(s, "catalogue", None) is not None]
    if not with_catalogue:
        raise ValueError("`num_items` (the catalogue size) is required by the gBCE loss.")
    return with_catalogue[0].catalogue.size


def check_hardness(value: Any) -> None:
    """Raises unless the hardness tilt `beta` is a finite number >= 0."""
    hardness = _number(value, "hardness")
    if not (math.isfinite(hardness) and hardness >= 0.0):
        raise ValueError(f"`hardness` must be a finite number >= 0 (0: no tilt), got {value!r}.")


def check_positive_prior(value: Any) -> None:
    """Raises unless the debiasing prior `tau+` is in `[0, 1)`."""
    prior = _number(value, "positive_prior")
    if not (math.isfinite(prior) and 0.0 <= prior < 1.0):
        raise ValueError(f"`positive_prior` must be in [0, 1) (0: no debiasing), got {value!r}.")


def check_reweighting(
    hardness: float,
    positive_prior: float,
    sampled_loss: str,
    custom_loss: bool,
    num_hard_negatives: Optional[int],
) -> None:
    """Raises if `hardness`/`positive_prior` is set where the loss is not the softmax."""
    for name, value in (("hardness", hardness), ("positive_prior", positive_prior)):
        if not value:
            continue
        if sampled_loss != "softmax":
            raise ValueError(f"`{name}` applies to sampled_loss='softmax', got {sampled_loss!r}.")
        if custom_loss or num_hard_negatives is not None:
            replaced = "`loss`" if custom_loss else "`num_hard_negatives`"
            raise ValueError(
                f"`{name}` ({value!r}) reweights the built-in softmax, which {replaced} "
                f"replaces: leave {replaced} unset or `{name}` at 0."
            )
