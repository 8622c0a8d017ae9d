"""`CorrectedRetrieval`: wrong input gets an error naming it; one case per test."""

import tfrs_negatives as tfn
from tfrs_negatives.mining import HardNegativeTable, KnownPositives
from tfrs_negatives.negatives import InBatch, Mined, Uniform

import numpy as np
import pytest
import tensorflow as tf

DIM, N_ITEMS = 4, 10


@pytest.mark.parametrize("strength", [float("nan"), -0.5, float("inf")])
def test_correction_strength_must_be_finite_and_non_negative(strength):
    with pytest.raises(ValueError, match=r"`correction_strength` must be a finite number >= 0"):
        tfn.CorrectedRetrieval(correction_strength=strength)


def test_correction_strength_must_be_a_number():
    with pytest.raises(TypeError, match="`correction_strength` must be a number, got 'a'"):
        tfn.CorrectedRetrieval(correction_strength="a")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(probability_clip=float("nan")), r"`probability_clip` must be in \(0, 1\)"),
        (dict(gbce_calibration=float("nan")), r"`gbce_calibration` must be in \[0, 1\]"),
        (dict(temperature=float("nan")), "`temperature` must be a finite number > 0"),
        (dict(temperature=float("inf")), "`temperature` must be a finite number > 0"),
        (dict(check_finite="yes"), "`check_finite` must be True or False"),
    ],
)
def test_nan_and_bad_flags_are_refused(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tfn.CorrectedRetrieval(**kwargs)


def _mined_task(known_positives):
    table = HardNegativeTable(np.arange(N_ITEMS), 2)
    table.assign(np.tile([[1, 2]], (N_ITEMS, 1)), np.full(N_ITEMS, 2))
    mined = Mined(table, np.arange(N_ITEMS), count=2, known_positives=known_positives)
    return tfn.CorrectedRetrieval(negatives=[InBatch(), mined], correction=None)


def _call(task, table, positives, **kwargs):
    rng = np.random.default_rng(0)
    queries = tf.constant(rng.normal(size=(len(positives), DIM)).astype(np.float32))
    return task(
        queries,
        tf.constant(table[positives]),
        candidate_ids=tf.constant(positives),
        candidate_tower=lambda ids: tf.gather(table, ids),
        **kwargs,
    )


def test_known_positives_without_query_ids_is_an_error():
    table = np.random.default_rng(1).normal(size=(N_ITEMS, DIM)).astype(np.float32)
    task = _mined_task(KnownPositives([7], [1]))
    with pytest.raises(ValueError, match="`query_ids` is required by `mined`.*known_positives"):
        _call(task, table, np.array([0, 3, 4]))
    # With query ids it runs, and user 7's known item 1 leaves its row.
    assert np.isfinite(_call(task, table, np.array([0, 3, 4]), query_ids=tf.constant([7, 8, 9])))


def test_without_known_positives_query_ids_are_optional():
    table = np.random.default_rng(1).normal(size=(N_ITEMS, DIM)).astype(np.float32)
    assert np.isfinite(_call(_mined_task(None), table, np.array([0, 3, 4])))


def _sampled_task(**kwargs):
    return tfn.CorrectedRetrieval(negatives=[Uniform(np.arange(N_ITEMS), 4, seed=0)], **kwargs)


def _with_nan(table, row):
    bad = table.copy()
    bad[row, 0] = np.nan
    return bad


@pytest.mark.parametrize("jit_compile", [True, False])
def test_check_finite_leaves_a_finite_loss_alone(jit_compile):
    table = np.random.default_rng(2).normal(size=(N_ITEMS, DIM)).astype(np.float32)
    positives = np.array([0, 3, 4, 5])
    on = _call(_sampled_task(check_finite=True, jit_compile=jit_compile), table, positives)
    off = _call(_sampled_task(jit_compile=jit_compile), table, positives)
    np.testing.assert_array_equal(on.numpy(), off.numpy())


def test_without_check_finite_a_nan_embedding_gives_a_nan_loss():
    table = np.random.default_rng(2).normal(size=(N_ITEMS, DIM)).astype(np.float32)
    loss = _call(_sampled_task(), _with_nan(table, 3), np.array([0, 3, 4, 5]))
    assert np.isnan(loss.numpy())


def test_check_finite_names_the_query_embeddings():
    task = tfn.CorrectedRetrieval(check_finite=True)
    queries = np.ones((3, DIM), np.float32)
    queries[1, 2] = np.inf
    with pytest.raises(tf.errors.InvalidArgumentError, match="`query_embeddings` hold NaN"):
        task(tf.constant(queries), tf.ones((3, DIM)))


def test_check_finite_names_the_candidate_embeddings():
    table = np.random.default_rng(2).normal(size=(N_ITEMS, DIM)).astype(np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`candidate_embeddings` hold NaN"):
        _call(_sampled_task(check_finite=True), _with_nan(table, 3), np.array([0, 3, 4, 5]))


def test_check_finite_names_the_sampled_embeddings_in_a_tf_function():
    table = _with_nan(np.random.default_rng(2).normal(size=(N_ITEMS, DIM)).astype(np.float32), 9)
    task = tfn.CorrectedRetrieval(
        negatives=[tfn.negatives.FullCatalogue(np.arange(N_ITEMS))], check_finite=True
    )

    @tf.function
    def step():
        return _call(task, table, np.array([0, 3, 4, 5]))

    with pytest.raises(tf.errors.InvalidArgumentError, match="sampled candidates' embeddings"):
        step()


def test_check_finite_round_trips_in_the_config():
    task = tfn.CorrectedRetrieval(check_finite=True)
    assert tfn.CorrectedRetrieval.from_config(task.get_config()).check_finite is True
