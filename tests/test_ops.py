"""Pure ops against NumPy references and hand-worked examples."""

from tfrs_negatives import ops

import numpy as np
import pytest
import tensorflow as tf


def _np_log_softmax_ce(logits):
    """Per-row -log softmax(logits)[i, i] in float64."""
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return lse - logits[np.arange(len(logits)), np.arange(len(logits))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logq_correction_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(5, 7)).astype(np.float32)
    q = rng.uniform(1e-8, 1.0, size=7).astype(np.float32)
    out = ops.logq_correction(tf.constant(scores), tf.constant(q), clip_min=1e-4, strength=0.75)
    expected = scores - 0.75 * np.log(np.clip(q, 1e-4, 1.0))[None, :]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_logq_correction_with_a_probability_per_entry():
    # [B, N] probabilities (row 1's own positive in column 0 has q = e^-3).
    q = np.array([[1.0, np.exp(-1)], [np.exp(-3), np.exp(-1)]], np.float32)
    out = ops.logq_correction(tf.zeros([2, 2]), tf.constant(q))
    np.testing.assert_allclose(out.numpy(), [[0, 1], [3, 1]], atol=1e-5)


def test_logq_correction_hand_worked():
    # q = [1, e^-1, e^-2]: corrections 0, +1, +2 added to each column.
    out = ops.logq_correction(
        tf.constant([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]), tf.constant([1.0, np.exp(-1), np.exp(-2)])
    )
    np.testing.assert_allclose(out.numpy(), [[0, 1, 2], [1, 3, 5]], atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_positive_uncorrected_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    b, n = 4, 6
    scores = rng.normal(size=(b, n)).astype(np.float32)
    q = rng.uniform(0.01, 0.9, size=n).astype(np.float32)
    q[1] = 1.0  # 1 - q_pos = 0 must stay finite (clipped)
    inputs = ops.CorrectionInputs(probabilities=tf.constant(q), clip_min=1e-6)
    out = ops.logq_correction_positive_uncorrected(tf.constant(scores), inputs).numpy()
    expected = np.empty_like(scores)
    for i in range(b):
        for j in range(n):
            if i == j:
                expected[i, j] = scores[i, j]
            else:
                rest = max(1.0 - q[i], 1e-6)
                expected[i, j] = scores[i, j] - np.log(q[j] / rest)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert np.isfinite(out).all()


def test_accidental_hit_mask_hand_worked():
    # ids:    7 3 7 | extra 3
    # row 0 (7): col 2 is 7 -> hit; row 1 (3): col 3 is 3 -> hit; row 2 (7): col 0 hit.
    mask = ops.accidental_hit_mask(
        tf.constant([7, 3, 7], tf.int64), tf.constant([7, 3, 7, 3], tf.int64)
    ).numpy()
    expected = np.array([[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float32])
def test_masking_is_finite_and_exact_in_low_precision(dtype):
    logits = tf.cast(tf.constant([[2.0, 1.0, 3.0, -1.0]]), dtype)
    masked = ops.apply_mask(
        ops.apply_mask(logits, tf.constant([[False, False, True, False]])),
        tf.constant([[False, False, True, False]]),
    )  # masked twice
    assert np.isfinite(tf.cast(masked, tf.float32).numpy()).all()
    probs = tf.cast(tf.nn.softmax(tf.cast(masked, tf.float32)), tf.float64).numpy()
    # Masked column takes exactly zero mass; others as a softmax over [2, 1, -1].
    ref = np.exp([2.0, 1.0, -1.0]) / np.exp([2.0, 1.0, -1.0]).sum()
    np.testing.assert_allclose(probs[0, [0, 1, 3]], ref, rtol=1e-2)
    assert probs[0, 2] == 0.0
    if dtype == tf.float16:
        softmax16 = tf.nn.softmax(masked).numpy()
        assert np.isfinite(softmax16).all() and softmax16[0, 2] == 0


def test_mask_value_rejects_integer_dtype():
    with pytest.raises(TypeError, match="dtype"):
        ops.mask_value(tf.int32)


@pytest.mark.parametrize("seed", [0, 3])
def test_softmax_cross_entropy_matches_numpy_with_weights(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(6, 9)).astype(np.float32) * 3
    weights = rng.uniform(0, 2, size=6).astype(np.float32)
    loss = ops.softmax_cross_entropy(tf.constant(logits), tf.constant(weights))
    expected = (weights * _np_log_softmax_ce(logits.astype(np.float64))).sum()
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("correction", ["logq", "positive_uncorrected"])
def test_fused_loss_equals_unfused_and_numpy(correction):
    rng = np.random.default_rng(5)
    b, n = 8, 11
    scores = rng.normal(size=(b, n)).astype(np.float32)
    q = rng.uniform(0.01, 0.5, size=n).astype(np.float32)
    ids = rng.integers(0, 4, size=n).astype(np.int64)
    weights = rng.uniform(0.5, 1.5, size=b).astype(np.float32)
    inputs = ops.CorrectionInputs(
        probabilities=tf.constant(q),
        method=correction,
        clip_min=1e-6,
        strength=1.0,
        positive_ids=tf.constant(ids[:b]),
        candidate_ids=tf.constant(ids),
    )
    fused = ops.fused_retrieval_loss(tf.constant(scores), inputs, tf.constant(weights))
    plain = ops.retrieval_loss(tf.constant(scores), inputs, tf.constant(weights))
    # NumPy: correct, then drop accidental hits from each row's denominator.
    total = 0.0
    for i in range(b):
        row = scores[i].astype(np.float64) - np.log(q)
        if correction == "positive_uncorrected":
            row = row + np.log(1 - q[i])
            row[i] = scores[i, i]
        keep = [j for j in range(n) if j == i or ids[j] != ids[i]]
        lse = np.log(np.exp(row[keep]).sum())
        total += weights[i] * (lse - row[i])
    np.testing.assert_allclose(fused.numpy(), total, rtol=1e-5)
    np.testing.assert_allclose(plain.numpy(), total, rtol=1e-5)


def test_to_int64_ids():
    strings = tf.constant(["a", "b", "a"])
    out = ops.to_int64_ids(strings).numpy()
    assert out.dtype == np.int64 and out[0] == out[2] and out[0] != out[1]
    np.testing.assert_array_equal(ops.to_int64_ids(tf.constant([1, 2], tf.int32)).numpy(), [1, 2])
    with pytest.raises(TypeError, match="`candidate_ids`.*float32"):
        ops.to_int64_ids(tf.constant([1.0]), "candidate_ids")
    with pytest.raises(ValueError, match=r"`ids`.*rank-1.*\(2, 1\)"):
        ops.to_int64_ids(tf.constant([[1], [2]]))
    with pytest.raises(ValueError, match="`ids` is required"):
        ops.to_int64_ids(None)


@pytest.mark.parametrize("correction", ["logq", "positive_uncorrected"])
def test_corrected_logits_of_rows_taken_out_of_the_batch_equal_the_full_rows(correction):
    rng = np.random.default_rng(5)
    b, n = 6, 9
    scores = tf.constant(rng.normal(size=(b, n)), tf.float32)
    ids = tf.constant([3, 1, 3, 7, 2, 1, 5, 3, 8], tf.int64)  # repeats: accidental hits
    inputs = ops.CorrectionInputs(
        probabilities=tf.constant(rng.uniform(0.01, 0.5, n), tf.float32),
        method=correction,
        candidate_ids=ids,
        column_excluded=tf.constant([False, False, True, False, False, False, True, False, False]),
        column_log_weight=tf.constant(rng.normal(size=n), tf.float32),
        positive_ids=ids[:b],
        score_mask=tf.constant(rng.uniform(size=(b, n)) > 0.2),
    )
    full = ops.corrected_logits(scores, inputs).numpy()
    rows = tf.constant([4, 1, 3])
    taken = ops.corrected_logits(tf.gather(scores, rows), inputs.rows(rows)).numpy()
    np.testing.assert_allclose(taken, full[[4, 1, 3]], rtol=1e-6)
