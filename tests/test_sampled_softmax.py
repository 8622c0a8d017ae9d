"""Sampled softmax without in-batch negatives: `[B, 1 + K]` logits, equal to TF core's."""

import tfrs_negatives as tfn
from tfrs_negatives import ops
from tfrs_negatives.negatives import InBatch

import numpy as np
import pytest
import tensorflow as tf
from tests_support import FixedDraws

N_ITEMS, DIM = 50, 6


def _problem(seed=0, b=8):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    queries = rng.normal(size=(b, DIM)).astype(np.float32)
    positives = rng.integers(0, N_ITEMS, b)
    draws = rng.integers(0, N_ITEMS, 12)
    draws[:2] = positives[:2]  # two accidental hits
    return table, queries, positives, draws


def _tf_core(table, queries, positives, draws, remove_accidental_hits=True):
    """`tf.nn.sampled_softmax_loss` with the same draws; uniform with replacement: Q = K/N."""
    k = len(draws)
    expected = tf.fill([len(positives), 1], k / N_ITEMS)
    per_row = tf.nn.sampled_softmax_loss(
        weights=tf.constant(table),
        biases=tf.zeros([N_ITEMS]),
        labels=tf.constant(positives[:, None], tf.int64),
        inputs=tf.constant(queries),
        num_sampled=k,
        num_classes=N_ITEMS,
        sampled_values=(tf.constant(draws, tf.int64), expected, tf.fill([k], k / N_ITEMS)),
        remove_accidental_hits=remove_accidental_hits,
    )
    return tf.reduce_sum(per_row)


def _ours(table, queries, positives, draws, **kwargs):
    task = tfn.CorrectedRetrieval(
        negatives=[FixedDraws(np.arange(N_ITEMS), draws)], duplicates="keep", **kwargs
    )
    loss = task(
        tf.constant(queries),
        tf.constant(table[positives]),
        candidate_ids=tf.constant(positives),
        candidate_tower=lambda ids: tf.gather(table, ids),
    )
    return task, loss


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_equals_tf_core_sampled_softmax(seed, jit_compile):
    # Our "keep" share of a uniform draw is 1/N, TF core's expected count K/N: the
    # constant log K they differ by cancels in the softmax (positive included).
    table, queries, positives, draws = _problem(seed)
    _, ours = _ours(table, queries, positives, draws, jit_compile=jit_compile)
    want = _tf_core(table, queries, positives, draws)
    np.testing.assert_allclose(ours.numpy(), want.numpy(), rtol=1e-5)
    _, uncorrected = _ours(table, queries, positives, draws, correction=None)
    # Without correction: logsumexp over the positive and the non-hit draws (NumPy).
    scores = queries.astype(np.float64) @ table.T.astype(np.float64)
    total = 0.0
    for i, item in enumerate(positives):
        negatives = [scores[i, j] for j in draws if j != item]
        total += np.logaddexp.reduce([scores[i, item], *negatives]) - scores[i, item]
    np.testing.assert_allclose(uncorrected.numpy(), total, rtol=1e-5)


def test_gradients_equal_tf_core():
    table, queries, positives, draws = _problem(4)
    q = tf.Variable(queries)
    t = tf.Variable(table)
    task = tfn.CorrectedRetrieval(
        negatives=[FixedDraws(np.arange(N_ITEMS), draws)], duplicates="keep"
    )
    with tf.GradientTape() as tape:
        ours = task(
            q,
            tf.gather(t, positives),
            candidate_ids=tf.constant(positives),
            candidate_tower=lambda ids: tf.gather(t, ids),
        )
    our_grads = [tf.convert_to_tensor(g) for g in tape.gradient(ours, [q, t])]
    with tf.GradientTape() as tape:
        k = len(draws)
        theirs = tf.reduce_sum(
            tf.nn.sampled_softmax_loss(
                t,
                tf.zeros([N_ITEMS]),
                tf.constant(positives[:, None], tf.int64),
                q,
                k,
                N_ITEMS,
                sampled_values=(
                    tf.constant(draws, tf.int64),
                    tf.fill([len(positives), 1], k / N_ITEMS),
                    tf.fill([k], k / N_ITEMS),
                ),
            )
        )
    their_grads = [tf.convert_to_tensor(g) for g in tape.gradient(theirs, [q, t])]
    for mine, reference in zip(our_grads, their_grads):
        np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-4, atol=1e-6)


class _Shapes(tf.keras.metrics.Metric):
    """Records the number of logit columns the batch metrics see."""

    def __init__(self):
        super().__init__(name="columns")
        self.columns = self.add_weight(name="n", initializer="zeros", dtype=tf.int32)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return self.columns.assign(tf.shape(y_pred)[1])

    def result(self):
        return self.columns


def test_without_in_batch_the_logits_are_one_plus_k_columns():
    table, queries, positives, draws = _problem(5, b=8)
    # Extra given rows (beyond the B positives) are not negatives without InBatch.
    extra = np.arange(8) % N_ITEMS
    for given in (positives, np.concatenate([positives, extra])):
        shapes = _Shapes()
        task = tfn.CorrectedRetrieval(
            negatives=[FixedDraws(np.arange(N_ITEMS), draws)], batch_metrics=[shapes]
        )
        loss = task(
            tf.constant(queries),
            tf.constant(table[given]),
            candidate_ids=tf.constant(given),
            candidate_tower=lambda ids: tf.gather(table, ids),
        )
        assert int(shapes.result()) == 1 + len(draws)
        if given is positives:
            first = loss.numpy()
    np.testing.assert_allclose(loss.numpy(), first, rtol=1e-6)


@pytest.mark.parametrize("loss", ["softmax", "bpr", "bce", "gbce"])
@pytest.mark.parametrize("method", ["logq", "positive_uncorrected"])
def test_positive_first_layout_equals_the_diagonal_layout(loss, method):
    # The [B, 1 + K] layout must give the loss of the TFRS layout [B, B + K] whose
    # given columns are masked for every row but their own.
    rng = np.random.default_rng(3)
    b, k = 5, 7
    own = rng.normal(size=b).astype(np.float32)
    shared = rng.normal(size=(b, k)).astype(np.float32)
    q_pos = rng.uniform(0.01, 0.5, b).astype(np.float32)
    q_draws = rng.uniform(0.01, 0.5, k).astype(np.float32)
    ids_pos = np.array([1, 2, 3, 4, 5])
    ids_draws = np.array([2, 9, 9, 1, 7, 8, 6])
    excluded_draws = np.array([False, False, True, False, False, True, False])
    diagonal = np.full((b, b), -3.0, np.float32)
    diagonal[np.arange(b), np.arange(b)] = own
    wide = ops.CorrectionInputs(
        probabilities=tf.constant(np.concatenate([q_pos, q_draws])),
        method=method,
        positive_ids=tf.constant(ids_pos, tf.int64),
        candidate_ids=tf.constant(np.concatenate([ids_pos, ids_draws]), tf.int64),
        column_excluded=tf.constant(np.concatenate([np.ones(b, bool), excluded_draws])),
    )
    narrow = ops.CorrectionInputs(
        probabilities=tf.constant(np.concatenate([[1.0], q_draws]).astype(np.float32)),
        method=method,
        positive_ids=tf.constant(ids_pos, tf.int64),
        candidate_ids=tf.constant(np.concatenate([[-1], ids_draws]), tf.int64),
        column_excluded=tf.constant(np.concatenate([[True], excluded_draws])),
        positive_columns=tf.zeros([b], tf.int32),
        positive_probabilities=tf.constant(q_pos),
    )
    wide_scores = tf.constant(np.concatenate([diagonal, shared], 1))
    narrow_scores = tf.constant(np.concatenate([own[:, None], shared], 1))
    args = (None, ops.LossChoice(loss, 100, 0.5))
    want = ops.retrieval_loss(wide_scores, wide, *args).numpy()
    got = ops.retrieval_loss(narrow_scores, narrow, *args).numpy()
    fused = ops.fused_retrieval_loss(narrow_scores, narrow, *args).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(fused, want, rtol=1e-5)


def test_in_batch_at_weight_zero_equals_no_in_batch():
    # InBatch at weight 0 keeps the TFRS layout [B, B + K] with the batch's columns
    # masked; without InBatch the layout is [B, 1 + K]: the same loss.
    table, queries, positives, _ = _problem(6, b=6)
    draws = np.arange(N_ITEMS)
    with_batch = tfn.CorrectedRetrieval(
        negatives=[InBatch(weight=0.0), FixedDraws(np.arange(N_ITEMS), draws)],
        correction=None,
    )
    without = tfn.CorrectedRetrieval(
        negatives=[FixedDraws(np.arange(N_ITEMS), draws)], correction=None
    )
    args = dict(
        candidate_ids=tf.constant(positives),
        candidate_tower=lambda ids: tf.gather(table, ids),
    )
    a = with_batch(tf.constant(queries), tf.constant(table[positives]), **args)
    b = without(tf.constant(queries), tf.constant(table[positives]), **args)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
