"""PriorCorrection and ops.prior.prior_correction against NumPy; config; SavedModel; errors."""

import tfrs_negatives as tfn  # noqa: F401
from tfrs_negatives.ops.prior import prior_correction
from tfrs_negatives.ranking import PriorCorrection

import numpy as np
import pytest
import tensorflow as tf


def _reference(p, rate):
    p = np.asarray(p, np.float64)
    return p / (p + (1 - p) / rate)


P = np.array([0.0, 1e-4, 0.03, 0.5, 0.9, 1.0])


@pytest.mark.parametrize("rate", [1.0, 0.5, 0.1, 0.01])
def test_probability_mode(rate):
    got = prior_correction(tf.constant(P, tf.float32), rate).numpy()
    np.testing.assert_allclose(got, _reference(P, rate), rtol=1e-5, atol=1e-7)


def test_hand_worked():
    # p'=0.5, rate=0.1: 0.5 / (0.5 + 0.5 / 0.1) = 0.5 / 5.5 = 1/11.
    np.testing.assert_allclose(PriorCorrection(0.1)(tf.constant([0.5])).numpy(), [1 / 11], 1e-6)


@pytest.mark.parametrize("rate", [0.5, 0.01])
def test_logit_mode_matches_probability_mode(rate):
    logits = np.array([-8.0, -2.0, 0.0, 3.0])
    got = PriorCorrection(rate, from_logits=True)(tf.constant(logits, tf.float32)).numpy()
    np.testing.assert_allclose(got, logits + np.log(rate), rtol=1e-6)
    p = 1 / (1 + np.exp(-got))
    np.testing.assert_allclose(p, _reference(1 / (1 + np.exp(-logits)), rate), rtol=1e-5)


def test_float16():
    p16 = tf.constant(P, tf.float16)
    got = prior_correction(p16, 0.01)
    assert got.dtype == tf.float16
    assert np.all(np.isfinite(got.numpy()))
    np.testing.assert_allclose(
        got.numpy().astype(np.float64), _reference(P.astype(np.float16), 0.01), rtol=2e-3, atol=1e-6
    )
    logits = prior_correction(tf.constant([-5.0, 5.0], tf.float16), 0.01, from_logits=True)
    assert logits.dtype == tf.float16
    np.testing.assert_allclose(logits.numpy(), np.array([-5, 5]) + np.log(0.01), rtol=1e-3)


def test_config_round_trip():
    layer = PriorCorrection(0.05, from_logits=True, name="prior")
    config = layer.get_config()
    assert config["rate"] == 0.05 and config["from_logits"] is True
    clone = PriorCorrection.from_config(config)
    assert (clone.rate, clone.from_logits, clone.name) == (0.05, True, "prior")


def test_saved_model_round_trip(tmp_path):
    inputs = tf.keras.Input([2])
    out = PriorCorrection(0.1)(tf.keras.layers.Dense(1, activation="sigmoid")(inputs))
    model = tf.keras.Model(inputs, out)
    x = np.array([[0.3, -1.0], [2.0, 0.5]], np.float32)
    expected = model(x).numpy()
    model.save(str(tmp_path / "m"))
    loaded = tf.keras.models.load_model(str(tmp_path / "m"))
    np.testing.assert_allclose(loaded(x).numpy(), expected, rtol=1e-6)
    raw = tf.saved_model.load(str(tmp_path / "m"))
    np.testing.assert_allclose(raw(tf.constant(x)).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("rate", [0.0, 2.0, float("nan")])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match="`rate` must be in"):
        PriorCorrection(rate)
