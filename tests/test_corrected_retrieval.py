"""`CorrectedRetrieval` against TFRS and NumPy references, inside `tfrs.Model`."""

import tfrs_negatives as tfn

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs
from tests_support import TwoTower, interactions


def _embeddings(seed, b=16, n=None, d=8):
    rng = np.random.default_rng(seed)
    n = n or b
    return (
        tf.constant(rng.normal(size=(b, d)).astype(np.float32)),
        tf.constant(rng.normal(size=(n, d)).astype(np.float32)),
        rng,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_equals_tfrs_loss_when_correction_is_off(seed, jit_compile):
    q, c, rng = _embeddings(seed, b=16, n=20)
    weights = tf.constant(rng.uniform(0.1, 2.0, 16).astype(np.float32))
    for kwargs in ({}, {"temperature": 0.3}):
        ours = tfn.CorrectedRetrieval(jit_compile=jit_compile, **kwargs)
        theirs = tfrs.tasks.Retrieval(**kwargs)
        np.testing.assert_allclose(ours(q, c).numpy(), theirs(q, c).numpy(), rtol=1e-5)
        np.testing.assert_allclose(
            ours(q, c, sample_weight=weights).numpy(),
            theirs(q, c, sample_weight=weights).numpy(),
            rtol=1e-5,
        )


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_tfrs_with_given_probabilities_and_hit_removal(seed):
    q, c, rng = _embeddings(seed, b=12)
    ids = tf.constant(rng.integers(0, 5, 12), tf.int64)
    probs = tf.constant(rng.uniform(0.01, 1.0, 12).astype(np.float32))
    ours = tfn.CorrectedRetrieval(remove_accidental_hits=True)
    theirs = tfrs.tasks.Retrieval(remove_accidental_hits=True)
    got = ours(q, c, candidate_ids=ids, candidate_sampling_probability=probs)
    want = theirs(q, c, candidate_ids=ids, candidate_sampling_probability=probs)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)
    # String ids give the same loss as the integers they stand for.
    names = tf.strings.as_string(ids)
    np.testing.assert_allclose(
        ours(q, c, candidate_ids=names, candidate_sampling_probability=probs).numpy(),
        got.numpy(),
        rtol=1e-6,
    )


def test_custom_loss_hard_negatives_and_batch_metrics_paths_match_tfrs():
    q, c, _ = _embeddings(3, b=10)
    loss = tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum")
    for kwargs in ({"loss": loss}, {"num_hard_negatives": 4}):
        ours = tfn.CorrectedRetrieval(**kwargs)
        theirs = tfrs.tasks.Retrieval(**kwargs)
        np.testing.assert_allclose(ours(q, c).numpy(), theirs(q, c).numpy(), rtol=1e-5)
    ours = tfn.CorrectedRetrieval(batch_metrics=[tf.keras.metrics.AUC(from_logits=True)])
    theirs = tfrs.tasks.Retrieval(batch_metrics=[tf.keras.metrics.AUC(from_logits=True)])
    ours(q, c)
    theirs(q, c)
    np.testing.assert_allclose(
        ours._batch_metrics[0].result().numpy(), theirs._batch_metrics[0].result().numpy()
    )


@pytest.mark.parametrize("correction", ["logq", "positive_uncorrected"])
def test_streaming_correction_matches_numpy(correction):
    # Batch of 6 with ids [0, 0, 1, 2, 2, 2]: after the update q = [2, 2, 1, 3, 3, 3] / 6.
    q, c, _ = _embeddings(4, b=6, d=4)
    ids = tf.constant([0, 0, 1, 2, 2, 2], tf.int64)
    est = tfn.StreamingFrequencyEstimator(num_buckets=1009, num_hashes=1)
    task = tfn.CorrectedRetrieval(frequency=est, correction=correction, remove_accidental_hits=True)
    loss = task(q, c, candidate_ids=ids, training=True).numpy()
    probs = np.array([2, 2, 1, 3, 3, 3]) / 6.0
    scores = q.numpy().astype(np.float64) @ c.numpy().T
    idv = ids.numpy()
    total = 0.0
    for i in range(6):
        row = scores[i] - np.log(probs)
        if correction == "positive_uncorrected":
            row = row + np.log(1 - probs[i])
            row[i] = scores[i, i]
        keep = [j for j in range(6) if j == i or idv[j] != idv[i]]
        total += np.log(np.exp(row[keep]).sum()) - row[i]
    np.testing.assert_allclose(loss, total, rtol=1e-5)


def test_estimator_updates_only_in_training():
    q, c, _ = _embeddings(5, b=4)
    ids = tf.constant([1, 2, 3, 4])
    est = tfn.StreamingFrequencyEstimator(num_buckets=64)
    task = tfn.CorrectedRetrieval(frequency=est)
    task(q, c, candidate_ids=ids, training=False)
    assert int(est.examples_seen.numpy()) == 0
    task(q, c, candidate_ids=ids, training=True)
    assert int(est.examples_seen.numpy()) == 4
    with pytest.raises(ValueError, match="`training` is None.*training=training"):
        task(q, c, candidate_ids=ids)
    # A static table needs no `training`.
    table = tfn.CorrectedRetrieval(frequency=tfn.StaticProbabilities([1, 2, 3, 4], [0.25] * 4))
    assert np.isfinite(table(q, c, candidate_ids=ids).numpy())


def test_extra_candidates_are_not_counted_by_the_estimator():
    q, c, _ = _embeddings(6, b=4, n=7)
    est = tfn.StreamingFrequencyEstimator(num_buckets=64)
    task = tfn.CorrectedRetrieval(frequency=est)
    task(q, c, candidate_ids=tf.constant([1, 1, 2, 3, 7, 8, 9]), training=True)
    assert int(est.examples_seen.numpy()) == 4
    np.testing.assert_allclose(est(tf.constant([1, 7])).numpy(), [0.5, 0.25])


def test_get_config_round_trip():
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=128, learning_rate=0.1),
        correction="positive_uncorrected",
        correction_strength=0.5,
        remove_accidental_hits=True,
        temperature=0.2,
        jit_compile=False,
        name="t",
    )
    config = task.get_config()
    clone = tfn.CorrectedRetrieval.from_config(config)
    assert clone.get_config() == config
    assert clone.frequency.num_buckets == 128
    q, c, _ = _embeddings(8, b=5)
    ids = tf.constant([1, 2, 1, 3, 4])
    np.testing.assert_allclose(
        task(q, c, candidate_ids=ids, training=False).numpy(),
        clone(q, c, candidate_ids=ids, training=False).numpy(),
        rtol=1e-6,
    )


def _make_model(seed=0):
    tf.keras.utils.set_random_seed(seed)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=256), remove_accidental_hits=True
    )
    model = TwoTower(task)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    return model


def test_trains_in_tfrs_model_and_weights_reload(tmp_path):
    model = _make_model()
    history = model.fit(interactions(), epochs=3, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    est = model.task.frequency
    assert int(est.examples_seen.numpy()) == 3 * 256
    before_eval = est.examples_seen.numpy()
    model.evaluate(interactions(), verbose=0)
    assert est.examples_seen.numpy() == before_eval  # evaluation does not count

    model.save_weights(str(tmp_path / "weights"))
    fresh = _make_model(seed=1)
    fresh.fit(interactions(seed=2).take(1), epochs=1, verbose=0)  # build variables
    fresh.load_weights(str(tmp_path / "weights"))
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    batch = next(iter(interactions(seed=3)))
    np.testing.assert_allclose(
        model.compute_loss(batch, training=False).numpy(),
        fresh.compute_loss(batch, training=False).numpy(),
        rtol=1e-6,
    )


def test_factorized_metrics_as_in_tfrs():
    items = tf.data.Dataset.from_tensor_slices(np.arange(40, dtype=np.int64)).batch(8)
    tf.keras.utils.set_random_seed(0)
    model = TwoTower(None)
    model.task = tfn.CorrectedRetrieval(
        metrics=tfrs.metrics.FactorizedTopK(
            candidates=items.map(lambda i: (i, model.item_tower(i))), ks=(1, 5, 10)
        )
    )
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    data = interactions()
    result = model.evaluate(data, return_dict=True, verbose=0)
    # Reference: exact top-k by id over the 40 items, in NumPy.
    hits, total = np.zeros(3), 0
    table = model.item_tower.embeddings.numpy()
    for batch in data:
        scores = model.query_tower(batch["user"]).numpy() @ table.T
        for row, item in zip(scores, batch["item"].numpy()):
            rank = (row > row[item]).sum()
            hits += rank < np.array([1, 5, 10])
            total += 1
    for k, expected in zip((1, 5, 10), hits / total):
        assert result[f"factorized_top_k/top_{k}_categorical_accuracy"] == pytest.approx(
            expected, abs=1e-6
        )


def test_mixed_precision_loss_is_finite_and_close_to_float32():
    q, c, rng = _embeddings(9, b=32, d=16)
    ids = tf.constant(rng.integers(0, 6, 32))
    probs = tf.constant(rng.uniform(1e-3, 1.0, 32).astype(np.float32))
    task = tfn.CorrectedRetrieval(remove_accidental_hits=True)
    full = task(q, c, candidate_ids=ids, candidate_sampling_probability=probs).numpy()
    half = task(
        tf.cast(q, tf.float16),
        tf.cast(c, tf.float16),
        candidate_ids=ids,
        candidate_sampling_probability=probs,
    )
    assert half.dtype == tf.float32 and np.isfinite(half.numpy())
    np.testing.assert_allclose(half.numpy(), full, rtol=2e-3)


def test_mixed_float16_policy_trains():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _make_model()
        history = model.fit(interactions(), epochs=2, verbose=0)
        assert all(np.isfinite(history.history["loss"]))
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


class _RecordingMetric(tfrs.metrics.Factorized):
    """Sums the query ids and counts the true ids it is given."""

    def __init__(self):
        super().__init__(name="recording")
        self.query_sum = self.add_weight(name="q", initializer="zeros", dtype=tf.int64)
        self.ids_seen = self.add_weight(name="n", initializer="zeros", dtype=tf.int64)

    def update_state(
        self,
        query_embeddings,
        true_candidate_embeddings,
        true_candidate_ids=None,
        sample_weight=None,
        query_ids=None,
    ):
        self.ids_seen.assign_add(tf.size(true_candidate_ids, out_type=tf.int64))
        return self.query_sum.assign_add(tf.reduce_sum(tf.cast(query_ids, tf.int64)))

    def result(self):
        return self.query_sum


def test_metrics_get_the_positives_ids_and_query_ids():
    q, c, _ = _embeddings(10, b=4, n=6)  # two extra candidate rows
    ids = tf.constant([1, 2, 3, 4, 5, 6])
    items = tf.data.Dataset.from_tensor_slices((tf.range(1, 7), c)).batch(3)
    recording = _RecordingMetric()
    top_k = tfrs.metrics.FactorizedTopK(candidates=items, ks=(1,))
    task = tfn.CorrectedRetrieval(metrics=[recording, top_k])
    task(q, c, candidate_ids=ids, query_ids=tf.constant([10, 20, 30, 40]))
    assert int(recording.query_sum.numpy()) == 100
    assert int(recording.ids_seen.numpy()) == 4  # only the 4 positives' ids
    assert 0.0 <= float(top_k.result()[0]) <= 1.0
