"""Sampling-probability estimators: values, state, config, errors."""

import tfrs_negatives as tfn

import numpy as np
import pytest
import tensorflow as tf


def _reference_streaming(batches, lr):
    """NumPy reference of StreamingFrequencyEstimator without hash collisions.

    Per id: last seen A (examples), decayed occurrences W, gap B = T / W.
    """
    last, occ, gap = {}, {}, {}
    now = 0
    for batch in batches:
        now += len(batch)
        ids, counts = np.unique(batch, return_counts=True)
        for i, c in zip(ids, counts):
            elapsed = now - last.get(i, 0)
            w, b = occ.get(i, 0.0), gap.get(i, 0.0)
            new_w = (1 - lr) * w + c
            gap[i] = ((1 - lr) * b * w + elapsed) / new_w
            occ[i], last[i] = new_w, now
    # A read adds the open gap since the last sighting: q = W / (T + now - A).
    return {i: occ[i] / (gap[i] * occ[i] + now - last[i]) for i in gap}, now


def test_streaming_hand_worked_example():
    # Batch 1: [5, 5, 9, 9, 9, 2] (6 examples). Item 5: seen twice in 6 examples ->
    # gap 6/2 = 3, q = 1/3; item 9: 6/3 = 2, q = 1/2; item 2: q = 1/6.
    est = tfn.StreamingFrequencyEstimator(num_buckets=1009, num_hashes=1, learning_rate=0.5)
    q = est(tf.constant([5, 5, 9, 9, 9, 2]), training=True).numpy()
    np.testing.assert_allclose(q, [1 / 3, 1 / 3, 1 / 2, 1 / 2, 1 / 2, 1 / 6], rtol=1e-6)
    # Batch 2: [5, 7] (now = 8). Item 5: elapsed 2, W = 0.5*2 + 1 = 2,
    # T = 0.5 * (3 * 2) + 2 = 5, gap 2.5, q = 0.4. Item 7 first seen: gap 8, q = 1/8.
    q = est(tf.constant([5, 7]), training=True).numpy()
    np.testing.assert_allclose(q, [0.4, 1 / 8], rtol=1e-6)
    # Reading without training changes nothing. Item 9 (W = 3, T = 6, last seen at
    # 6, now 8) reads the open gap too: q = 3 / (6 + 2) = 0.375. An unseen id gets
    # 1 / examples_seen.
    q = est(tf.constant([9, 123456]), training=False).numpy()
    np.testing.assert_allclose(q, [0.375, 1 / 8], rtol=1e-6)
    assert int(est.examples_seen.numpy()) == 8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    batches = [rng.integers(0, 50, size=int(rng.integers(1, 40))) for _ in range(30)]
    est = tfn.StreamingFrequencyEstimator(
        num_buckets=2**16, num_hashes=3, learning_rate=0.1, seed=seed
    )
    update = tf.function(lambda ids: est(ids, training=True))
    for batch in batches:
        update(tf.constant(batch, tf.int64))
    expected, _ = _reference_streaming(batches, 0.1)
    ids = np.array(sorted(expected))
    got = est.probability(tf.constant(ids, tf.int64)).numpy()
    np.testing.assert_allclose(got, [expected[i] for i in ids], rtol=1e-5)


def test_streaming_duplicates_in_batch_are_counted():
    # An item in every batch 4 times out of 8 has per-example probability 1/2, not 1.
    est = tfn.StreamingFrequencyEstimator(num_buckets=101, num_hashes=1)
    for _ in range(5):
        q = est(tf.constant([1, 1, 1, 1, 2, 3, 4, 5]), training=True)
    np.testing.assert_allclose(q.numpy()[0], 0.5, rtol=1e-6)


def test_streaming_tracks_zipf_frequencies():
    rng = np.random.default_rng(0)
    n = 500
    p = 1.0 / np.arange(1, n + 1)
    p /= p.sum()
    est = tfn.StreamingFrequencyEstimator(num_buckets=4096, learning_rate=0.05)
    update = tf.function(lambda ids: est(ids, training=True))
    counts = np.zeros(n)
    for _ in range(150):
        batch = rng.choice(n, size=512, p=p)
        counts += np.bincount(batch, minlength=n)
        update(tf.constant(batch, tf.int64))
    seen = np.flatnonzero(counts)
    q = est.probability(tf.constant(seen, tf.int64)).numpy()
    exact = counts[seen] / counts.sum()
    assert np.corrcoef(q, exact)[0, 1] > 0.95
    assert np.corrcoef(np.log(q), np.log(exact))[0, 1] > 0.9
    # The head is estimated within 15%.
    np.testing.assert_allclose(q[:10], exact[:10], rtol=0.15)


def test_streaming_multiple_hashes_take_the_smallest_probability():
    # With 1 bucket everything collides: q = total rate (1). With many hashes over
    # 1 bucket each, still 1; with 2 hashes over many buckets, collisions vanish.
    tiny = tfn.StreamingFrequencyEstimator(num_buckets=1, num_hashes=1)
    q = tiny(tf.constant([1, 2, 3, 4]), training=True).numpy()
    np.testing.assert_allclose(q, 1.0)
    wide = tfn.StreamingFrequencyEstimator(num_buckets=10007, num_hashes=2)
    q = wide(tf.constant([1, 2, 3, 4]), training=True).numpy()
    np.testing.assert_allclose(q, 0.25)


def test_streaming_item_that_stops_appearing_decays():
    # Seen once in the first batch of 1024, then absent for 199 batches: its share
    # of the 204,800 examples is 1 / 204,800, not the 1 / 1024 of its sighting.
    est = tfn.StreamingFrequencyEstimator(num_buckets=2**16)
    update = tf.function(lambda ids: est(ids, training=True))
    update(tf.range(1024, dtype=tf.int64))
    for step in range(199):
        update(tf.fill([1024], tf.constant(5000 + step, tf.int64)))
    np.testing.assert_allclose(est(tf.constant([7])).numpy(), [1 / 204_800], rtol=1e-6)


def test_streaming_string_ids_and_training_tensor():
    est = tfn.StreamingFrequencyEstimator(num_buckets=1000)
    est(tf.constant(["x", "y", "x", "z"]), training=tf.constant(False))
    assert int(est.examples_seen.numpy()) == 0
    q = est(tf.constant(["x", "y", "x", "z"]), training=tf.constant(True)).numpy()
    np.testing.assert_allclose(q, [0.5, 0.25, 0.5, 0.25], rtol=1e-6)
    # Strings are fingerprinted: the same ids as int64 fingerprints read the same q.
    ints = tfn.ops.to_int64_ids(tf.constant(["x"]))
    np.testing.assert_allclose(est.probability(ints).numpy(), [0.5], rtol=1e-6)


def test_streaming_memory_is_fixed_by_buckets():
    est = tfn.StreamingFrequencyEstimator(num_buckets=256, num_hashes=2)
    sizes = [int(tf.size(v)) for v in est.weights]
    est(tf.range(100_000, dtype=tf.int64), training=True)
    assert [int(tf.size(v)) for v in est.weights] == sizes
    assert sum(sizes) == 3 * 2 * 256 + 2  # 3 arrays per hash; examples seen, id kind


def test_streaming_checkpoint_restores_state_exactly(tmp_path):
    rng = np.random.default_rng(1)
    est = tfn.StreamingFrequencyEstimator(num_buckets=512)
    for _ in range(4):
        est(tf.constant(rng.integers(0, 100, 64)), training=True)
    path = tf.train.Checkpoint(estimator=est).save(str(tmp_path / "ckpt"))
    fresh = tfn.StreamingFrequencyEstimator(num_buckets=512)
    tf.train.Checkpoint(estimator=fresh).restore(path).assert_consumed()
    for a, b in zip(est.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    probe = tf.constant(np.arange(100))
    np.testing.assert_array_equal(est(probe).numpy(), fresh(probe).numpy())


@pytest.mark.parametrize(
    "make",
    [
        lambda: tfn.StreamingFrequencyEstimator(
            num_buckets=64, num_hashes=3, learning_rate=0.2, seed=7
        ),
        lambda: tfn.ExactFrequencyEstimator([3, 1, 2], [5, 3, 2], unseen_count=0.5),
        lambda: tfn.StaticProbabilities(["a", "b"], [0.25, 0.75], default_probability=0.01),
    ],
)
def test_get_config_round_trips(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    probe = (
        tf.constant(["a", "b", "zz"])
        if isinstance(layer, tfn.StaticProbabilities)
        else tf.constant([1, 2, 3, 99])
    )
    np.testing.assert_array_equal(layer(probe).numpy(), clone(probe).numpy())
    # Also through Keras' generic (de)serialization, by registered name.
    again = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert type(again) is type(layer)


def test_exact_frequency_from_dataset():
    ids = tf.constant(["b", "a", "b", "c", "b", "a"])
    for dataset in (
        tf.data.Dataset.from_tensor_slices(ids),
        tf.data.Dataset.from_tensor_slices(ids).batch(4),
    ):
        est = tfn.ExactFrequencyEstimator.from_dataset(dataset)
        q = est(tf.constant(["a", "b", "c", "never"])).numpy()
        np.testing.assert_allclose(q, [2 / 6, 3 / 6, 1 / 6, 1 / 6], rtol=1e-6)


def test_exact_frequency_unseen_count():
    est = tfn.ExactFrequencyEstimator([10, 20], [30, 10], unseen_count=0.4)
    np.testing.assert_allclose(
        est(tf.constant([20, 10, 30])).numpy(), [0.25, 0.75, 0.01], rtol=1e-6
    )


def test_static_probabilities_unknown_id_without_default_fails():
    est = tfn.StaticProbabilities([1, 2], [0.5, 0.5])
    np.testing.assert_allclose(est(tf.constant([2, 1])).numpy(), [0.5, 0.5])
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in the table"):
        est(tf.constant([3]))


def test_table_checkpoint_round_trip(tmp_path):
    est = tfn.ExactFrequencyEstimator([1, 2, 3], [1, 1, 2])
    path = tf.train.Checkpoint(e=est).save(str(tmp_path / "c"))
    other = tfn.ExactFrequencyEstimator([1, 2, 3], [5, 5, 5])
    tf.train.Checkpoint(e=other).restore(path).assert_consumed()
    np.testing.assert_allclose(other(tf.constant([3])).numpy(), [0.5])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: tfn.StaticProbabilities([1, 2], [0.5, 1.5]), r"`probabilities`.*\(0, 1\]"),
        (lambda: tfn.StaticProbabilities([1, 2], [0.5, float("nan")]), "`probabilities`.*NaN"),
        (lambda: tfn.StaticProbabilities([1, 2], [0.0, 0.5]), "`probabilities`"),
        (
            lambda: tfn.StaticProbabilities([1, 2], [0.5]),
            "`probabilities` must have one value per id",
        ),
        (lambda: tfn.StaticProbabilities([1, 1], [0.5, 0.5]), "`ids` must be distinct"),
        (lambda: tfn.StaticProbabilities([], []), "`ids` must hold at least one"),
        (lambda: tfn.StaticProbabilities([1.5], [0.5]), "`ids`.*float"),
        (lambda: tfn.ExactFrequencyEstimator([1, 2], [-1, 3]), "`counts`"),
        (lambda: tfn.ExactFrequencyEstimator([1, 2], [0, 0]), "`counts`.*positive total"),
        (lambda: tfn.StreamingFrequencyEstimator(num_buckets=0), "`num_buckets`"),
        (lambda: tfn.StreamingFrequencyEstimator(num_hashes=0), "`num_hashes`"),
        (lambda: tfn.StreamingFrequencyEstimator(learning_rate=0.0), "`learning_rate`"),
        (
            lambda: tfn.ExactFrequencyEstimator.from_dataset(
                tf.data.Dataset.from_tensor_slices({"a": [1]})
            ),
            "`dataset`",
        ),
    ],
)
def test_bad_input_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda est: est(), ValueError, "must be called with `ids`"),
        (lambda est: est(None, training=True), ValueError, "must be called with `ids`"),
        (lambda est: est(tf.constant([1.0, 2.0])), TypeError, "`ids`.*float32"),
        (lambda est: est(tf.constant([[1, 2]])), ValueError, r"`ids`.*rank-1"),
    ],
    ids=["no ids", "None ids", "float ids", "rank-2 ids"],
)
def test_estimator_called_without_ids_or_with_bad_ids(call, error, match):
    with pytest.raises(error, match=match):
        call(tfn.StreamingFrequencyEstimator(num_buckets=8))


@pytest.mark.parametrize(
    "make",
    [
        lambda: tfn.ExactFrequencyEstimator([3, 1, 2], [5, 3, 2]),
        lambda: tfn.StaticProbabilities([7, 4], [0.25, 0.5], default_probability=0.125),
        lambda: tfn.StreamingFrequencyEstimator(num_buckets=64, id_kind="int"),
    ],
)
def test_estimator_of_int_ids_rejects_string_ids(make):
    est = make()
    assert est.id_kind == "int"
    est.check_ids(tf.constant([1, 2], tf.int32), "candidate_ids")
    with pytest.raises(
        TypeError,
        match=rf"^`candidate_ids` are strings but the {type(est).__name__} `{est.name}` was built "
        r"on int ids \(int32/int64\)",
    ):
        est.check_ids(tf.constant(["1", "2"]), "candidate_ids")


def test_direct_call_with_string_ids_on_an_int_table_raises():
    est = tfn.ExactFrequencyEstimator([3, 1, 2], [5, 3, 2])
    with pytest.raises(TypeError, match="`ids` are strings but the ExactFrequencyEstimator"):
        est(tf.constant(["3"]))


def test_estimator_of_string_ids_rejects_int_ids_and_accepts_their_fingerprints():
    dataset = tf.data.Dataset.from_tensor_slices(["b", "a", "b"])
    est = tfn.ExactFrequencyEstimator.from_dataset(dataset)
    assert est.id_kind == "string"
    with pytest.raises(TypeError, match="`candidate_ids` are ints but .* built on string ids"):
        est.check_ids(np.array([0, 1]), "candidate_ids")
    with pytest.raises(TypeError, match="`ids` are ints but"):
        est(tf.constant([0, 1], tf.int32))
    # int64 fingerprints (what to_int64_ids gives, as the task passes them) read the strings.
    fingerprints = tfn.ops.to_int64_ids(tf.constant(["a", "b"]))
    np.testing.assert_allclose(est(fingerprints).numpy(), [1 / 3, 2 / 3], rtol=1e-6)


def test_table_keeps_its_string_kind_through_config():
    est = tfn.StaticProbabilities(["a", "b"], [0.25, 0.75])
    config = est.get_config()
    assert config["id_kind"] == "string" and all(isinstance(i, int) for i in config["ids"])
    clone = tfn.StaticProbabilities.from_config(config)
    assert clone.id_kind == "string"
    np.testing.assert_allclose(clone(tf.constant(["b"])).numpy(), [0.75])
    with pytest.raises(ValueError, match="`id_kind` is 'int' but `ids` are strings"):
        tfn.StaticProbabilities(["a"], [0.5], id_kind="int")


def test_streaming_kind_is_fixed_by_the_first_checked_ids():
    est = tfn.StreamingFrequencyEstimator(num_buckets=64)
    assert est.id_kind is None and est.get_config()["id_kind"] is None
    est(tf.constant([1, 2], tf.int64), training=True)  # int64 may be fingerprints: not fixed
    assert est.id_kind is None
    est.check_ids(tf.constant(["a"]), "candidate_ids")
    assert est.id_kind == "string" and est.get_config()["id_kind"] == "string"
    assert tfn.StreamingFrequencyEstimator.from_config(est.get_config()).id_kind == "string"
    with pytest.raises(TypeError, match="`candidate_ids` are ints but the Streaming"):
        est.check_ids(tf.constant([1]), "candidate_ids")


def test_streaming_rejects_the_other_kind_at_trace_time():
    est = tfn.StreamingFrequencyEstimator(num_buckets=64)
    count = tf.function(lambda ids: est(ids, training=True))
    count(tf.constant(["a", "b"]))  # the first call fixes "string"
    assert est.id_kind == "string"
    with pytest.raises(TypeError, match="`ids` are ints but the StreamingFrequencyEstimator"):
        count(tf.constant([1, 2], tf.int32))


def test_streaming_checkpoint_restores_the_id_kind(tmp_path):
    est = tfn.StreamingFrequencyEstimator(num_buckets=64)
    est(tf.constant(["a", "b", "a"]), training=True)
    path = tf.train.Checkpoint(estimator=est).save(str(tmp_path / "ckpt"))
    fresh = tfn.StreamingFrequencyEstimator(num_buckets=64)
    tf.train.Checkpoint(estimator=fresh).restore(path).assert_consumed()
    assert fresh.id_kind == "string"
    with pytest.raises(TypeError, match="`candidate_ids` are ints but"):
        fresh.check_ids(tf.constant([1, 2]), "candidate_ids")


def test_streaming_bad_id_kind():
    with pytest.raises(ValueError, match="`id_kind` must be 'int', 'string' or None, got 'str'"):
        tfn.StreamingFrequencyEstimator(id_kind="str")


def test_task_rejects_candidate_ids_of_another_kind_than_its_estimator():
    task = tfn.CorrectedRetrieval(frequency=tfn.ExactFrequencyEstimator([0, 1, 2], [3, 2, 1]))
    q = tf.ones([2, 4])
    assert np.isfinite(task(q, q, candidate_ids=tf.constant([0, 1])).numpy())
    with pytest.raises(
        TypeError, match="`candidate_ids` are strings but the ExactFrequencyEstimator"
    ):
        task(q, q, candidate_ids=tf.constant(["0", "1"]))
