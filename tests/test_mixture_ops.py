"""Mixture probabilities and sampled losses against NumPy and hand-worked values."""

from tfrs_negatives import ops

import numpy as np
import pytest
import tensorflow as tf


def test_expected_share_hand_worked():
    # B = 4 in-batch draws with p_batch = [0.5, 0.25], K = 4 uniform over N = 8 (1/8):
    # Q = (4 * p + 4 / 8) / 8 = [0.3125, 0.1875].
    q = ops.expected_share(tf.constant([[0.5, 0.25], [0.125, 0.125]]), tf.constant([4, 4]))
    np.testing.assert_allclose(q.numpy(), [0.3125, 0.1875], rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_inclusion_probability_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=(3, 7))
    draws = np.array([5, 0, 12])
    log_miss = np.stack(
        [
            ops.log_miss_with_replacement(tf.constant(p[s], tf.float32), draws[s]).numpy()
            for s in range(3)
        ]
    )
    pi = ops.inclusion_probability(tf.constant(log_miss)).numpy()
    expected = 1 - np.prod((1 - p) ** draws[:, None], axis=0)
    np.testing.assert_allclose(pi, expected, rtol=1e-5)


def test_expected_share_with_no_draws_is_zero_not_nan():
    q = ops.expected_share(tf.constant([[0.5, 0.5]]), tf.constant([0]))
    np.testing.assert_array_equal(q.numpy(), [0.0, 0.0])


def test_log_miss_edge_cases():
    # p = 1 with 0 draws must be 0 (not NaN); p = 1 with draws is -inf -> pi = 1.
    out = ops.log_miss_with_replacement(tf.constant([1.0, 0.0]), 0).numpy()
    np.testing.assert_array_equal(out, [0.0, 0.0])
    certain = ops.log_miss_with_replacement(tf.constant([1.0]), 3)
    assert ops.inclusion_probability(certain[None, :]).numpy()[0] == 1.0


def _np_softplus(x):
    return np.logaddexp(0.0, x)


def test_bpr_bce_gbce_match_numpy():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 6)) * 2
    valid = rng.uniform(size=(4, 6)) > 0.3
    np.fill_diagonal(valid, False)
    valid[2, :] = False  # a row with no negatives
    w = rng.uniform(0.5, 1.5, 4)
    pos = np.diag(logits)
    bpr_rows = [
        _np_softplus(logits[i, valid[i]] - pos[i]).mean() if valid[i].any() else 0.0
        for i in range(4)
    ]
    bce_rows = [_np_softplus(-pos[i]) + _np_softplus(logits[i, valid[i]]).sum() for i in range(4)]
    t, num_items = 0.75, 101
    k = valid.sum(1)
    alpha = k / (num_items - 1)
    beta = alpha * (t * (1 - 1 / np.maximum(alpha, 1e-12)) + 1 / np.maximum(alpha, 1e-12))
    beta[k == 0] = 1 - t  # alpha -> 0 limit of the formula
    gbce_rows = [
        beta[i] * _np_softplus(-pos[i]) + _np_softplus(logits[i, valid[i]]).sum() for i in range(4)
    ]
    args = (tf.constant(logits, tf.float32), tf.constant(valid))
    weights = tf.constant(w, tf.float32)
    np.testing.assert_allclose(
        ops.bpr_loss(*args, weights).numpy(), (w * bpr_rows).sum(), rtol=1e-5
    )
    np.testing.assert_allclose(
        ops.bce_loss(*args, weights).numpy(), (w * bce_rows).sum(), rtol=1e-5
    )
    gbce = ops.bce_loss(*args, weights, ops.gbce_beta(tf.constant(k), num_items, t))
    np.testing.assert_allclose(gbce.numpy(), (w * gbce_rows).sum(), rtol=1e-5)


def test_gbce_beta_limits():
    # t = 0 is BCE (beta 1); t = 1 is beta = alpha = k / (|I| - 1) = 10 / 100.
    np.testing.assert_allclose(ops.gbce_beta(tf.constant([10.0]), 101, 0.0).numpy(), [1.0])
    np.testing.assert_allclose(
        ops.gbce_beta(tf.constant([10.0]), 101, 1.0).numpy(), [0.1], rtol=1e-6
    )


@pytest.mark.parametrize("loss", ["softmax", "bpr", "bce"])
def test_retrieval_loss_with_column_exclusions_and_weights(loss):
    # Columns: 3 given (positives) + 3 sampled. Column 4 is excluded (a duplicate),
    # column 5 has weight 0.5 (log-weight added to it as a negative only).
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(3, 6)).astype(np.float32)
    q = rng.uniform(0.05, 0.5, 6).astype(np.float32)
    excluded = np.array([False, False, False, False, True, False])
    log_w = np.log(np.array([1, 1, 1, 1, 1, 0.5], np.float32))
    inputs = ops.CorrectionInputs(
        probabilities=tf.constant(q),
        column_excluded=tf.constant(excluded),
        column_log_weight=tf.constant(log_w),
    )
    got = ops.retrieval_loss(tf.constant(scores), inputs, None, ops.LossChoice(loss)).numpy()
    fused = ops.fused_retrieval_loss(
        tf.constant(scores), inputs, None, ops.LossChoice(loss)
    ).numpy()
    total = 0.0
    for i in range(3):
        row = scores[i].astype(np.float64) - np.log(q)
        negatives = [j for j in range(6) if j != i and not excluded[j]]
        neg = row[negatives] + log_w[negatives]
        if loss == "softmax":
            total += np.log(np.exp(row[i]) + np.exp(neg).sum()) - row[i]
        elif loss == "bpr":
            total += _np_softplus(neg - row[i]).mean()
        else:
            total += _np_softplus(-row[i]) + _np_softplus(neg).sum()
    np.testing.assert_allclose(got, total, rtol=1e-5)
    np.testing.assert_allclose(fused, total, rtol=1e-5)
