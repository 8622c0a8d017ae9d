"""Hardness-tilted and debiased softmax: reweighted negatives in the softmax denominator.

Two changes to the negatives' term of the sampled softmax, each on its own or together:

* the hardness tilt of Robinson et al. 2021 ("Contrastive Learning with Hard Negative
  Samples", ICLR, HCL): negatives are importance-weighted towards the hard ones,
  `w_ij = n_i e^{beta s_ij} / sum_k e^{beta s_ik}` over the row's `n_i` valid
  negatives (`beta = 0`: every `w = 1`);
* the debiased negative term of Chuang et al. 2020 ("Debiased Contrastive Learning",
  NeurIPS; STL10 linear accuracy 80.15 -> 84.26 there): a share `tau+` of the
  "negatives" are taken to be unlabelled positives, and their expected mass is
  removed, `g_i = max((sum_j w_ij e^{l_ij} - tau+ n_i e^{l_ip}) / (1 - tau+), floor_i)`.

Per row `loss_i = -l_ip + log(e^{l_ip} + g_i) = softplus(log g_i - l_ip)`; with
`beta = 0, tau+ = 0` it is the softmax cross-entropy over the positive and the valid
negatives. Everything is computed in log space, in float32.

The floor. Chuang et al. clamp `g` at `N e^{-1/t}`, the smallest value a negatives'
sum can take when scores are cosines divided by `t`. Dot products (and log-Q corrected
logits) have no such bound, and a constant floor would break the softmax's invariance
to adding a constant to a row's logits. The floor used here is the bound that does
not: `floor_i = n_i min_j (w_ij e^{l_ij})`, the row's number of valid negatives times
its smallest weighted term. The debiased sum is an estimate of `n_i` times the true
negatives' mean term, which is at least their smallest term; the floor says exactly
that, with the observed minimum. It shifts with the row's logits, so the loss keeps
the shift invariance; it never binds at `tau+ = 0` (a sum is at least `n` times its
smallest term); it is a constant of the step (`stop_gradient`, as Chuang's constant):
a clamped row pushes its positive up and leaves its negatives alone.
"""

import math
from typing import Optional

from tfrs_negatives.ops.losses import _weighted_sum, positive_logits
from tfrs_negatives.ops.masking import mask_value

import tensorflow as tf

# Below this ratio of the removed positive mass to the negatives' sum the debiased
# numerator `S (1 - ratio)` is kept; above it (within float32 noise of zero, or
# negative) the floor is used. Keeps `log1p(-ratio)` and its gradient finite.
_MAX_REMOVED_SHARE = 1.0 - 1e-6


def tilted_debiased_softmax(  # noqa: PLR0913 (the loss and its two options)
    logits: tf.Tensor,
    scores: tf.Tensor,
    valid_negatives: tf.Tensor,
    positive_columns: Optional[tf.Tensor] = None,
    hardness: float = 0.0,
    positive_prior: float = 0.0,
    sample_weight: Optional[tf.Tensor] = None,
) -> tf.Tensor:
    """Sum over rows of `w_i * softplus(log g_i - l_ip)` (see the module docstring).

    Args:
      logits: `[B, N]` corrected, masked logits `l`.
      scores: `[B, N]` raw scores `s` (after temperature, before correction) that
        the hardness weights are computed from.
      valid_negatives: `[B, N]` boolean mask of each row's negatives (not its
        positive, not masked).
      positive_columns: Optional `[B]` column of each row's positive (default `i`).
      hardness: Robinson et al.'s `beta >= 0`; 0: no tilt.
      positive_prior: Chuang et al.'s `tau+` in `[0, 1)`; 0: no debiasing.
      sample_weight: Optional `[B]` weights of the rows.

    Returns:
      Scalar float32 loss. A row with no valid negative has the softmax loss of its
      logits (its masked entries only).
    """
    _check_options(hardness, positive_prior)
    logits = tf.cast(logits, tf.float32)
    valid = tf.cast(valid_negatives, tf.bool)
    positive = positive_logits(logits, positive_columns)
    count = tf.reduce_sum(tf.cast(valid, tf.float32), axis=1)
    log_count = tf.math.log(tf.maximum(count, 1.0))
    masked = tf.constant(mask_value(tf.float32), tf.float32)
    terms = logits
    if hardness:
        terms = logits + tf.stop_gradient(_log_weights(scores, valid, hardness, log_count))
    terms = tf.where(valid, terms, masked)  # log(w_ij e^{l_ij}), masked out of the row
    log_sum = tf.reduce_logsumexp(terms, axis=1)
    log_g = log_sum
    if positive_prior:
        smallest = tf.reduce_min(tf.where(valid, terms, -masked), axis=1)
        log_floor = tf.stop_gradient(log_count + smallest)
        log_g = _debiased(log_sum, positive, log_count, log_floor, positive_prior)
    tilted = tf.nn.softplus(log_g - positive)
    # No valid negative: the plain softmax of the row (logsumexp over it minus l_ip).
    plain = tf.reduce_logsumexp(logits, axis=1) - positive
    per_row = tf.where(count > 0.0, tilted, plain)
    return _weighted_sum(per_row, sample_weight)


def _log_weights(
    scores: tf.Tensor, valid: tf.Tensor, hardness: float, log_count: tf.Tensor
) -> tf.Tensor:
    """`[B, N]` `log w_ij = beta s_ij - logsumexp_{k valid} beta s_ik + log n_i`."""
    masked = tf.constant(mask_value(tf.float32), tf.float32)
    tilt = tf.where(valid, float(hardness) * tf.cast(scores, tf.float32), masked)
    return tilt - tf.reduce_logsumexp(tilt, axis=1, keepdims=True) + log_count[:, None]


def _debiased(
    log_sum: tf.Tensor,
    positive: tf.Tensor,
    log_count: tf.Tensor,
    log_floor: tf.Tensor,
    positive_prior: float,
) -> tf.Tensor:
    """`[B]` `log max((S - tau+ n e^{l_p}) / (1 - tau+), floor)`, all in log space."""
    log_removed = math.log(positive_prior) + log_count + positive  # log(tau+ n e^{l_p})
    log_ratio = log_removed - log_sum
    usable = log_ratio < math.log(_MAX_REMOVED_SHARE)
    # The unused branch gets a harmless ratio, so neither branch's gradient is NaN.
    safe_ratio = tf.where(usable, log_ratio, tf.fill(tf.shape(log_ratio), -1.0))
    estimate = log_sum + tf.math.log1p(-tf.exp(safe_ratio)) - math.log1p(-positive_prior)
    return tf.where(usable, tf.maximum(estimate, log_floor), log_floor)


def _check_options(hardness: float, positive_prior: float) -> None:
    if not (math.isfinite(hardness) and hardness >= 0.0):
        raise ValueError(f"`hardness` must be a finite number >= 0, got {hardness!r}.")
    if not (math.isfinite(positive_prior) and 0.0 <= positive_prior < 1.0):
        raise ValueError(f"`positive_prior` must be in [0, 1), got {positive_prior!r}.")
