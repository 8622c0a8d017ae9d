"""PAV, Platt and isotonic calibrators, log-loss and ECE against hand-worked/NumPy values."""

import tfrs_negatives as tfn  # noqa: F401
from tfrs_negatives.ranking import (
    IsotonicCalibration,
    PlattCalibration,
    expected_calibration_error,
    fit_platt,
    log_loss,
    pool_adjacent_violators,
)

import numpy as np
import pytest
import tensorflow as tf


def test_pav_hand_worked():
    # [1, 3, 2, 2, 5, 0]: 3>2 pools to [2.5] then with 2 -> mean(3,2,2)=7/3; 5>0 pools to 2.5,
    # which is < 7/3? no (2.5 > 7/3), so stays: [1, 7/3, 7/3, 7/3, 2.5, 2.5].
    got = pool_adjacent_violators([1, 3, 2, 2, 5, 0])
    np.testing.assert_allclose(got, [1, 7 / 3, 7 / 3, 7 / 3, 2.5, 2.5])
    # weighted: [2 (w=1), 0 (w=3)] -> (2 + 0) / 4 = 0.5 for both.
    np.testing.assert_allclose(pool_adjacent_violators([2, 0], [1, 3]), [0.5, 0.5])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pav_monotone_and_mean_preserving(seed):
    y = np.random.default_rng(seed).random(200)
    fit = pool_adjacent_violators(y)
    assert np.all(np.diff(fit) >= -1e-12)
    np.testing.assert_allclose(fit.mean(), y.mean())


def _miscalibrated(n, seed):
    """True p = sigmoid(2 s - 3); the raw score sigmoid(s) is badly miscalibrated."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * s - 3)))).astype(np.float64)
    return s, y


def test_platt_recovers_parameters_and_reduces_ece():
    s, y = _miscalibrated(40_000, 0)
    a, b = fit_platt(s, y)
    assert abs(a - 2) < 0.1 and abs(b + 3) < 0.1
    layer = PlattCalibration.fit(s, y)
    st, yt = _miscalibrated(20_000, 1)
    before = expected_calibration_error(1 / (1 + np.exp(-st)), yt)
    after = expected_calibration_error(layer(tf.constant(st, tf.float32)).numpy(), yt)
    assert before > 0.1 and after < 0.02


def test_isotonic_interpolates_and_reduces_ece():
    s, y = _miscalibrated(20_000, 2)
    layer = IsotonicCalibration.fit(s, y)
    assert np.all(np.diff(layer.knots_y) >= 0)
    st, yt = _miscalibrated(20_000, 3)
    p = layer(tf.constant(st, tf.float32)).numpy()
    np.testing.assert_allclose(p, np.interp(st, layer.knots_x, layer.knots_y), atol=1e-5)
    assert expected_calibration_error(p, yt) < 0.02
    assert log_loss(p, yt) < log_loss(1 / (1 + np.exp(-st)), yt)


def test_isotonic_hand_worked_knots():
    # scores 0,1,2,3 with labels 0,1,0,1 -> PAV [0, .5, .5, 1]; 1.5 -> 0.5, 2.5 -> 0.75,
    # outside the knots the map is constant.
    layer = IsotonicCalibration.fit([0, 1, 2, 3], [0, 1, 0, 1])
    np.testing.assert_allclose(layer.knots_y, [0, 0.5, 0.5, 1])
    got = layer(tf.constant([[-1.0, 0.5, 1.5], [2.5, 3.0, 9.0]])).numpy()
    np.testing.assert_allclose(got, [[0, 0.25, 0.5], [0.75, 1, 1]], atol=1e-6)


def test_metrics_against_hand_worked():
    p, y = np.array([0.1, 0.4, 0.8, 0.9]), np.array([0, 1, 1, 1])
    ref = -np.mean(np.log([0.9, 0.4, 0.8, 0.9]))
    np.testing.assert_allclose(log_loss(p, y), ref)
    # 2 bins: [0.1, 0.4] -> |1 - 0.5| = 0.5 over 2 ; [0.8, 0.9] -> |2 - 1.7| = 0.3; (0.5+0.3)/4.
    np.testing.assert_allclose(expected_calibration_error(p, y, num_bins=2), 0.2)


@pytest.mark.parametrize("cls", [PlattCalibration, IsotonicCalibration])
def test_config_and_saved_model_with_query_tower(cls, tmp_path):
    s, y = _miscalibrated(2000, 4)
    calibrator = cls.fit(s, y, name="calibrator")
    clone = cls.from_config(calibrator.get_config())
    assert clone.get_config() == calibrator.get_config()
    inputs = tf.keras.Input([3])
    score = tf.keras.layers.Dense(1, name="tower")(inputs)
    model = tf.keras.Model(inputs, calibrator(score))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    expected = model(x).numpy()
    tf.saved_model.save(model, str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    np.testing.assert_allclose(loaded(tf.constant(x)).numpy(), expected, rtol=1e-6)
    model.save(str(tmp_path / "k"))
    keras_loaded = tf.keras.models.load_model(str(tmp_path / "k"))
    np.testing.assert_allclose(keras_loaded(x).numpy(), expected, rtol=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="`labels` must be 0 or 1"):
        PlattCalibration.fit([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="equal size"):
        IsotonicCalibration.fit([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="`scores` must be finite"):
        IsotonicCalibration.fit([0.1, np.nan], [0, 1])
    with pytest.raises(ValueError, match="`knots_x` must increase"):
        IsotonicCalibration([0, 0], [0.1, 0.2])
