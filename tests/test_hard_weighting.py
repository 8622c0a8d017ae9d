"""Hardness-tilted (Robinson et al. 2021) and debiased (Chuang et al. 2020) softmax.

The op and the task against a per-row NumPy reference written from the formulas:
`w_ij = n_i e^{beta s_ij} / sum_k e^{beta s_ik}`, `S_i = sum_j w_ij e^{l_ij}`,
`g_i = max((S_i - tau+ n_i e^{l_ip}) / (1 - tau+), n_i min_j w_ij e^{l_ij})`,
`loss_i = -l_ip + log(e^{l_ip} + g_i)`.
"""

from typing import NamedTuple

import tfrs_negatives as tfn
from tfrs_negatives import ops
from tfrs_negatives.ops.masking import mask_value

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs
from tests_support import FixedDraws, TwoTower, interactions

OPTIONS = [(0.0, 0.0), (2.0, 0.0), (0.0, 0.3), (1.5, 0.2)]


class Rows(NamedTuple):
    """A problem for the op: `[B, N]` logits, scores, valid negatives; `[B]` positive columns."""

    logits: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    columns: np.ndarray


def _reference_row(rows, i, options):
    """Row `i`'s loss in float64, straight from the formulas (`options = (beta, tau+)`)."""
    beta, tau = options
    logits = rows.logits[i].astype(np.float64)
    positive, valid = logits[rows.columns[i]], rows.valid[i]
    n = int(valid.sum())
    if n == 0:  # the plain softmax of the row
        return np.logaddexp.reduce(logits) - positive
    s, negatives = rows.scores[i][valid].astype(np.float64), logits[valid]
    weights = n * np.exp(beta * s) / np.exp(beta * s).sum()
    terms = weights * np.exp(negatives)
    g = terms.sum()
    if tau > 0:
        g = max((g - tau * n * np.exp(positive)) / (1.0 - tau), n * terms.min())
    return -positive + np.log(np.exp(positive) + g)


def reference(rows, options, weights=None):
    """Sum over rows of the per-row losses times `weights` (float64)."""
    losses = [_reference_row(rows, i, options) for i in range(len(rows.logits))]
    weights = np.ones(len(losses)) if weights is None else weights
    return float(np.dot(losses, weights))


def _clamped_rows(rows, options):
    """How many rows' debiased sums are below the floor (so the clamp is exercised)."""
    beta, tau = options
    count = 0
    for logits, scores, v, column in zip(*rows):
        if not v.any():
            continue
        w = v.sum() * np.exp(beta * scores[v]) / np.exp(beta * scores[v]).sum()
        terms = w * np.exp(logits[v])
        removed = tau * v.sum() * np.exp(logits[column])
        count += (terms.sum() - removed) / (1 - tau) < v.sum() * terms.min()
    return count


def _problem(seed, layout, b=6, n=10):
    """Masked logits (positive of some rows made large, one row with no negative).

    Returns `(Rows, positive_columns for the op (None on the diagonal), [B] weights)`.
    """
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 1.5, (b, n)).astype(np.float32)
    logits = (scores - np.log(rng.uniform(0.05, 1.0, n))).astype(np.float32)  # a log-Q shift
    columns = np.arange(b) if layout == "diagonal" else np.zeros(b, np.int64)
    own = np.zeros((b, n), bool)
    own[np.arange(b), columns] = True
    valid = (rng.uniform(size=(b, n)) > 0.3) & ~own
    valid[1] = False  # no valid negative
    logits[np.arange(b), columns] += np.where(np.arange(b) % 2 == 0, 4.0, 0.0)
    logits = np.where(valid | own, logits, mask_value(tf.float32)).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, b).astype(np.float32)
    tf_columns = None if layout == "diagonal" else tf.constant(columns, tf.int32)
    return Rows(logits, scores, valid, columns), tf_columns, weights


def _op(rows, tf_columns, options, weights=None):
    return ops.tilted_debiased_softmax(
        tf.constant(rows.logits), tf.constant(rows.scores), tf.constant(rows.valid), tf_columns,
        *options, None if weights is None else tf.constant(weights),
    )  # fmt: skip


@pytest.mark.parametrize("layout", ["diagonal", "column0"])
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("seed", [0, 1])
def test_op_matches_numpy(layout, options, seed):
    rows, tf_columns, weights = _problem(seed, layout)
    got = _op(rows, tf_columns, options, weights)
    np.testing.assert_allclose(got.numpy(), reference(rows, options, weights), rtol=1e-5)


def test_the_clamp_is_exercised_and_matches():
    rows, tf_columns, _ = _problem(0, "diagonal")
    assert _clamped_rows(rows, (1.0, 0.6)) >= 2
    got = _op(rows, tf_columns, (1.0, 0.6))
    np.testing.assert_allclose(got.numpy(), reference(rows, (1.0, 0.6)), rtol=1e-5)


@pytest.mark.parametrize("layout", ["diagonal", "column0"])
def test_zero_options_equal_the_softmax_cross_entropy(layout):
    rows, tf_columns, weights = _problem(3, layout)
    got = _op(rows, tf_columns, (0.0, 0.0), weights)
    want = ops.softmax_cross_entropy(tf.constant(rows.logits), weights, tf_columns)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def _direct(rows, options):
    """`[B]` losses as the formulas read, in float64 TF (no log space), for gradients.

    `rows.logits` and `rows.scores` are float64 tensors; every row needs a negative.
    """
    beta, tau = options
    valid = tf.cast(rows.valid, tf.float64)
    n = tf.reduce_sum(valid, 1)
    positive = tf.gather(rows.logits, rows.columns, axis=1, batch_dims=1)
    tilt = tf.exp(beta * rows.scores) * valid
    weights = tf.stop_gradient(n[:, None] * tilt / tf.reduce_sum(tilt, 1, keepdims=True))
    terms = weights * tf.exp(rows.logits) * valid
    g = tf.reduce_sum(terms, 1)
    if tau > 0:
        smallest = tf.reduce_min(tf.where(rows.valid, terms, np.inf), 1)
        g = tf.maximum((g - tau * n * tf.exp(positive)) / (1 - tau), tf.stop_gradient(n * smallest))
    return tf.math.log(tf.exp(positive) + g) - positive


@pytest.mark.parametrize("options", [(2.0, 0.0), (0.0, 0.3), (1.0, 0.6)])
def test_gradient_matches_the_direct_formula(options):
    rows, _, _ = _problem(4, "diagonal")
    has = rows.valid.any(1)  # the direct form needs a negative in every row
    # The kept rows' positives stay in their columns.
    rows = Rows(rows.logits[has], rows.scores[has], rows.valid[has], np.nonzero(has)[0])
    x = tf.constant(rows.logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = ops.tilted_debiased_softmax(x, rows.scores, rows.valid, rows.columns, *options)
    got = tape.gradient(loss, x).numpy()
    x64 = tf.constant(rows.logits.astype(np.float64))
    with tf.GradientTape() as tape:
        tape.watch(x64)
        scores = tf.constant(rows.scores.astype(np.float64))
        direct = tf.reduce_sum(_direct(rows._replace(logits=x64, scores=scores), options))
    want = tape.gradient(direct, x64).numpy()
    np.testing.assert_allclose(loss.numpy(), direct.numpy(), rtol=1e-5)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_no_valid_negative_and_an_empty_batch_give_finite_values_and_gradients():
    logits = tf.constant([[3.0, mask_value(tf.float32)], [1.0, 2.0]])
    valid = tf.constant([[False, False], [False, True]])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = ops.tilted_debiased_softmax(logits, logits, valid, None, 1.0, 0.5)
    gradient = tape.gradient(loss, logits).numpy()
    assert np.isfinite(loss.numpy()) and np.all(np.isfinite(gradient))
    empty = tf.zeros([0, 0])
    assert ops.tilted_debiased_softmax(empty, empty, tf.zeros([0, 0], tf.bool), None, 1.0, 0.5) == 0


def _embeddings(seed, b=8, n=12, d=6):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(b, d)).astype(np.float32)
    c = rng.normal(size=(n, d)).astype(np.float32)
    ids = rng.integers(0, 6, n).astype(np.int64)
    probabilities = rng.uniform(0.02, 0.5, n).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, b).astype(np.float32)
    return q, c, ids, probabilities, weights


def _tensors(*arrays):
    return [tf.constant(a) for a in arrays]


def _task_reference(inputs, options, temperature):
    """In-batch layout with extra negatives, log-Q, accidental hits removed (NumPy)."""
    q, c, ids, probabilities, weights = inputs
    scores = (q.astype(np.float64) @ c.T.astype(np.float64)) / temperature
    logits = scores - np.log(probabilities.astype(np.float64))[None, :]
    b = len(q)
    own = np.arange(len(c))[None, :] == np.arange(b)[:, None]
    valid = (ids[None, :] != ids[:b, None]) & ~own
    return reference(Rows(logits, scores, valid, np.arange(b)), options, weights)


@pytest.mark.parametrize("beta,tau", OPTIONS[1:])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_task_matches_numpy(beta, tau, jit_compile):
    q, c, ids, probabilities, weights = _embeddings(5)
    task = tfn.CorrectedRetrieval(
        hardness=beta, positive_prior=tau, temperature=0.5, remove_accidental_hits=True,
        jit_compile=jit_compile,
    )  # fmt: skip
    tq, tc, tids, tp, tw = _tensors(q, c, ids, probabilities, weights)
    got = task(tq, tc, sample_weight=tw, candidate_sampling_probability=tp, candidate_ids=tids)
    want = _task_reference((q, c, ids, probabilities, weights), (beta, tau), 0.5)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_sampled_softmax_task_matches_numpy():
    rng = np.random.default_rng(6)
    table = rng.normal(size=(30, 5)).astype(np.float32)
    queries = rng.normal(size=(6, 5)).astype(np.float32)
    positives = rng.integers(0, 30, 6)
    draws = rng.integers(0, 30, 9)
    draws[:2] = positives[:2]  # accidental hits, masked
    task = tfn.CorrectedRetrieval(
        negatives=[FixedDraws(np.arange(30), draws)], duplicates="keep", correction=None,
        hardness=1.0, positive_prior=0.2,
    )  # fmt: skip
    tq, tc, tids = _tensors(queries, table[positives], positives)
    got = task(tq, tc, candidate_ids=tids, candidate_tower=lambda i: tf.gather(table, i))
    scores = queries.astype(np.float64) @ table.T.astype(np.float64)
    logits = np.concatenate([scores[np.arange(6), positives][:, None], scores[:, draws]], 1)
    valid = np.concatenate([np.zeros((6, 1), bool), draws[None, :] != positives[:, None]], 1)
    want = reference(Rows(logits, logits, valid, np.zeros(6, int)), (1.0, 0.2))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def _direct_task_loss(q, c, probabilities, weights, options):
    """The task's loss from embeddings in float64 TF: diagonal positives, log-Q, no hits."""
    scores = tf.matmul(q, c, transpose_b=True)
    logits = scores - tf.math.log(tf.constant(probabilities, tf.float64))[None, :]
    b, n = q.shape[0], c.shape[0]
    valid = np.arange(n)[None, :] != np.arange(b)[:, None]
    losses = _direct(Rows(logits, scores, valid, np.arange(b)), options)
    return tf.reduce_sum(losses * weights.astype(np.float64))


@pytest.mark.parametrize("beta,tau", [(1.0, 0.25), (3.0, 0.0)])
def test_task_gradients_match_the_direct_formula_with_and_without_jit(beta, tau):
    # The weights are constants of the step: no gradient flows through `e^{beta s}`.
    q, c, _, probabilities, weights = _embeddings(7)
    q64, c64 = tf.Variable(q.astype(np.float64)), tf.Variable(c.astype(np.float64))
    with tf.GradientTape() as tape:
        direct = _direct_task_loss(q64, c64, probabilities, weights, (beta, tau))
    want = [g.numpy() for g in tape.gradient(direct, [q64, c64])]
    for jit_compile in (True, False):
        task = tfn.CorrectedRetrieval(hardness=beta, positive_prior=tau, jit_compile=jit_compile)
        qv, cv = tf.Variable(q), tf.Variable(c)
        tp, tw = _tensors(probabilities, weights)
        with tf.GradientTape() as tape:
            loss = task(qv, cv, sample_weight=tw, candidate_sampling_probability=tp)
        np.testing.assert_allclose(loss.numpy(), direct.numpy(), rtol=1e-5)
        for got, expected in zip(tape.gradient(loss, [qv, cv]), want):
            np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_zero_options_are_the_plain_task():
    q, c, _, _, weights = _tensors(*_embeddings(8))
    ours = tfn.CorrectedRetrieval(hardness=0.0, positive_prior=0.0)
    theirs = tfrs.tasks.Retrieval()
    np.testing.assert_allclose(ours(q, c, sample_weight=weights).numpy(),
                               theirs(q, c, sample_weight=weights).numpy(), rtol=1e-5)  # fmt: skip


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"hardness": -0.5}, ValueError, r"`hardness` must be a finite number >= 0.*-0.5"),
        ({"hardness": float("nan")}, ValueError, "`hardness`"),
        ({"hardness": float("inf")}, ValueError, "`hardness`"),
        ({"hardness": "1"}, TypeError, "`hardness` must be a number"),
        ({"positive_prior": 1.0}, ValueError, r"`positive_prior` must be in \[0, 1\).*1.0"),
        ({"positive_prior": -0.1}, ValueError, "`positive_prior`"),
        ({"positive_prior": float("nan")}, ValueError, "`positive_prior`"),
        (
            {"hardness": 1.0, "sampled_loss": "bpr"},
            ValueError,
            "`hardness` applies to sampled_loss='softmax', got 'bpr'",
        ),
        (
            {"positive_prior": 0.1, "sampled_loss": "bce"},
            ValueError,
            "`positive_prior` applies to sampled_loss='softmax', got 'bce'",
        ),
        ({"hardness": 1.0, "num_hard_negatives": 3}, ValueError, "`num_hard_negatives`"),
        (
            {"positive_prior": 0.1, "loss": tf.keras.losses.CategoricalCrossentropy()},
            ValueError,
            "`positive_prior`.*`loss`",
        ),
    ],
)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        tfn.CorrectedRetrieval(**kwargs)


def test_retrieval_loss_refuses_the_options_on_other_losses():
    scores = tf.zeros([2, 3])
    choice = ops.LossChoice("bpr", hardness=1.0)
    with pytest.raises(ValueError, match="`hardness` applies to sampled_loss='softmax'"):
        ops.retrieval_loss(scores, ops.CorrectionInputs(), choice=choice)


def test_get_config_round_trip():
    task = tfn.CorrectedRetrieval(hardness=0.7, positive_prior=0.15, temperature=0.5)
    config = task.get_config()
    assert config["hardness"] == 0.7 and config["positive_prior"] == 0.15
    rebuilt = tfn.CorrectedRetrieval.from_config(config)
    assert rebuilt.get_config() == config
    q, c, *_ = _tensors(*_embeddings(9))
    np.testing.assert_allclose(rebuilt(q, c).numpy(), task(q, c).numpy(), rtol=1e-6)


def _fit(epochs):
    tf.keras.utils.set_random_seed(0)
    model = TwoTower(tfn.CorrectedRetrieval(hardness=1.0, positive_prior=0.1))
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.2))
    return model.fit(interactions(), epochs=epochs, verbose=0).history["loss"]


def test_fit_gives_a_finite_decreasing_loss():
    history = _fit(4)
    assert np.all(np.isfinite(history)) and history[-1] < history[0]


def test_mixed_float16_loss_is_finite():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        history = _fit(2)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert np.all(np.isfinite(history))
