"""Estimators survive SavedModel export, alone and inside a Keras functional model."""

import tfrs_negatives as tfn

import numpy as np
import pytest
import tensorflow as tf


def _trained_streaming():
    est = tfn.StreamingFrequencyEstimator(num_buckets=1024, num_hashes=2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        est(tf.constant([f"item{i}" for i in rng.integers(0, 20, 50)]), training=True)
    return est


@pytest.mark.parametrize(
    "make",
    [
        _trained_streaming,
        lambda: tfn.ExactFrequencyEstimator(["item1", "item2"], [3, 1]),
        lambda: tfn.StaticProbabilities(["item1", "item2"], [0.2, 0.8], default_probability=0.01),
    ],
)
def test_functional_model_with_estimator_saves_and_loads(make, tmp_path):
    est = make()
    ids = tf.keras.Input(shape=(), dtype=tf.string, name="ids")
    model = tf.keras.Model(ids, est(ids))
    probe = tf.constant(["item1", "item2", "item7", "never"])
    expected = model(probe).numpy()
    model.save(str(tmp_path / "model"), save_format="tf")
    loaded = tf.keras.models.load_model(str(tmp_path / "model"))
    np.testing.assert_array_equal(loaded(probe).numpy(), expected)
    restored = loaded.layers[-1]
    assert type(restored) is type(est)
    for a, b in zip(est.weights, restored.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_estimator_in_tf_module_saved_model(tmp_path):
    est = _trained_streaming()
    module = tf.Module()
    module.estimator = est
    module.probability = tf.function(
        est.__call__, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    probe = tf.constant(["item3", "item11", "zzz"])
    expected = est(probe).numpy()
    tf.saved_model.save(module, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_array_equal(loaded.probability(probe).numpy(), expected)
