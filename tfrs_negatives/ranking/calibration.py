"""Calibrators of retrieval/ranking scores into probabilities, as exportable Keras layers."""

from tfrs_negatives.ops.calibration import fit_isotonic, fit_platt

import numpy as np
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class PlattCalibration(tf.keras.layers.Layer):
    """`p = sigmoid(a * s + b)` (Platt 1999; temperature scaling when `b = 0`).

    Fit with `PlattCalibration.fit(scores, labels)` on held-out logged outcomes.

    Call:
      inputs: `[...]` scores. Returns `[...]` probabilities (float32 maths, input dtype).
    """

    def __init__(self, slope: float = 1.0, intercept: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.slope, self.intercept = float(slope), float(intercept)

    @classmethod
    def fit(cls, scores, labels, **kwargs) -> "PlattCalibration":
        """Newton fit of `(a, b)` minimising log-loss; `scores` `[N]`, `labels` `[N]` in {0,1}."""
        a, b = fit_platt(scores, labels)
        return cls(slope=a, intercept=b, **kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        x = tf.cast(inputs, tf.float32)
        return tf.cast(tf.sigmoid(self.slope * x + self.intercept), inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "slope": self.slope, "intercept": self.intercept}


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class IsotonicCalibration(tf.keras.layers.Layer):
    """Monotone piecewise-linear map from scores to probabilities (isotonic regression).

    Knots come from pool-adjacent-violators on held-out outcomes (`IsotonicCalibration.fit`);
    between knots the map interpolates linearly (located with `tf.searchsorted`), outside
    them it is constant.

    Args:
      knots_x: `[K]` increasing scores. knots_y: `[K]` non-decreasing probabilities.

    Call:
      inputs: `[...]` scores. Returns `[...]` probabilities.
    """

    def __init__(self, knots_x, knots_y, **kwargs):
        super().__init__(**kwargs)
        x = np.asarray(knots_x, np.float64).reshape(-1)
        y = np.asarray(knots_y, np.float64).reshape(-1)
        if x.size == 0 or x.shape != y.shape:
            raise ValueError(
                f"`knots_x` and `knots_y` must be non-empty of equal size, got {x.size}, {y.size}."
            )
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("`knots_x` must increase strictly and `knots_y` must not decrease.")
        self.knots_x, self.knots_y = x.tolist(), y.tolist()

    @classmethod
    def fit(cls, scores, labels, **kwargs) -> "IsotonicCalibration":
        """PAV fit on `scores` `[N]` and `labels` `[N]` in {0, 1}."""
        x, y = fit_isotonic(scores, labels)
        return cls(knots_x=x, knots_y=y, **kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        kx = tf.constant(self.knots_x, tf.float32)
        ky = tf.constant(self.knots_y, tf.float32)
        x = tf.cast(inputs, tf.float32)
        flat = tf.reshape(x, [-1])
        k = tf.size(kx)
        hi = tf.clip_by_value(tf.searchsorted(kx, flat, side="right"), 1, tf.maximum(k - 1, 1))
        lo = hi - 1
        hi = tf.minimum(hi, k - 1)
        x0, x1 = tf.gather(kx, lo), tf.gather(kx, hi)
        y0, y1 = tf.gather(ky, lo), tf.gather(ky, hi)
        t = tf.clip_by_value(tf.math.divide_no_nan(flat - x0, x1 - x0), 0.0, 1.0)
        out = tf.reshape(y0 + t * (y1 - y0), tf.shape(x))
        return tf.cast(out, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "knots_x": self.knots_x, "knots_y": self.knots_y}
