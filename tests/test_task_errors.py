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
    message = r"`query_ids` is required by `mined\w*`, whose `known_positives`"
    with pytest.raises(ValueError, match=message):
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


# Construction errors, one case each.
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(correction="log"), ValueError, "`correction` must be one of"),
        (dict(frequency=lambda ids: ids), TypeError, "`frequency` must be a tfrs_negatives"),
        (dict(temperature=0.0), ValueError, "`temperature` must be a finite number > 0"),
        (dict(negatives=[]), ValueError, "`negatives` must list at least one"),
        (dict(negatives=["uniform"]), TypeError, "`negatives` must hold"),
        (
            dict(negatives=[InBatch(weight=0.0), Uniform([1, 2], 1, weight=0.0)]),
            ValueError,
            "weights of `negatives` must sum to a positive",
        ),
        (dict(negatives=[InBatch(), InBatch()]), ValueError, "lists InBatch more than once"),
        (dict(duplicates="drop"), ValueError, "`duplicates` must be one of"),
        (dict(sampled_loss="hinge"), ValueError, "`sampled_loss` must be one of"),
        (dict(sampled_loss="gbce"), ValueError, "`num_items`"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tfn.CorrectedRetrieval(**kwargs)


def _in_batch_call(**kwargs):
    rng = np.random.default_rng(7)
    q = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
    c = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
    q = kwargs.pop("query_embeddings", q)
    c = kwargs.pop("candidate_embeddings", c)
    return tfn.CorrectedRetrieval(remove_accidental_hits=True)(q, c, **kwargs)


IDS = tf.constant([1, 2, 3, 4])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(candidate_embeddings=tf.zeros([4, 5]), candidate_ids=IDS),
            ValueError,
            "`candidate_embeddings`.*dimension.*3.*got 5",
        ),
        (
            dict(query_embeddings=tf.zeros([4]), candidate_ids=IDS),
            ValueError,
            "`query_embeddings` must have shape",
        ),
        (
            dict(candidate_embeddings=tf.zeros([4, 1, 3]), candidate_ids=IDS),
            ValueError,
            "`candidate_embeddings` must have shape",
        ),
        (
            dict(candidate_embeddings=tf.zeros([2, 3]), candidate_ids=IDS[:2]),
            ValueError,
            "at least as many rows",
        ),
        (dict(), ValueError, "`candidate_ids` is required by accidental-hit removal"),
        (dict(candidate_ids=IDS[:3]), ValueError, "`candidate_ids` must have 4 entries.*got 3"),
        (dict(candidate_ids=tf.cast(IDS, tf.float32)), TypeError, "`candidate_ids`.*float32"),
        (
            dict(candidate_ids=IDS, sample_weight=tf.ones([3])),
            ValueError,
            "`sample_weight` must have 4 entries",
        ),
    ],
)
def test_bad_call_inputs(kwargs, error, match):
    with pytest.raises(error, match=match):
        _in_batch_call(**kwargs)


@pytest.mark.parametrize(
    "probabilities", [[0.5, 0.0, 0.5, 0.5], [0.5, 1.5, 0.5, 0.5], [0.5, float("nan"), 0.5, 0.5]]
)
def test_given_probabilities_outside_the_unit_interval(probabilities):
    with pytest.raises(tf.errors.InvalidArgumentError, match="`candidate_sampling_probability`"):
        _in_batch_call(candidate_ids=IDS, candidate_sampling_probability=tf.constant(probabilities))


def _mixed_call(task, tower=True, **kwargs):
    table = np.random.default_rng(0).normal(size=(N_ITEMS, DIM)).astype(np.float32)
    arguments = dict(candidate_ids=tf.constant([0, 1]))
    if tower:
        arguments["candidate_tower"] = lambda ids: tf.gather(table, ids)
    arguments.update(kwargs)
    return task(tf.zeros([2, DIM]), tf.constant(table[:2]), **arguments)


def _mixed_task(frequency=True):
    estimator = tfn.StaticProbabilities(np.arange(N_ITEMS), np.full(N_ITEMS, 0.1))
    return tfn.CorrectedRetrieval(
        frequency=estimator if frequency else None,
        negatives=[InBatch(), Uniform(np.arange(N_ITEMS), 3, seed=0)],
    )


def test_sampled_sources_need_the_candidate_tower():
    with pytest.raises(ValueError, match="`candidate_tower` is required.*Uniform"):
        _mixed_call(_mixed_task(), tower=False)


def test_sampled_sources_need_candidate_ids():
    with pytest.raises(ValueError, match="`candidate_ids` is required"):
        _mixed_call(_mixed_task(), candidate_ids=None)


def test_the_candidate_tower_must_match_the_dimension():
    with pytest.raises(ValueError, match="`candidate_tower` must return.*dimension"):
        _mixed_call(_mixed_task(), candidate_tower=lambda ids: tf.zeros([tf.size(ids), DIM + 1]))


def test_in_batch_with_sampled_sources_needs_an_estimator():
    with pytest.raises(ValueError, match="needs the in-batch sampling probability"):
        _mixed_call(_mixed_task(frequency=False))
