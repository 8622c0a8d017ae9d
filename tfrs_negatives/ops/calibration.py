"""Calibration maths: pool-adjacent-violators, Platt fitting, log-loss and ECE (NumPy)."""

from typing import Tuple

import numpy as np


def check_scores_labels(scores, labels) -> Tuple[np.ndarray, np.ndarray]:
    """Validates 1-D `scores` and `{0,1}` `labels` of equal length; returns float64 copies."""
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(labels, np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"`scores` and `labels` must have equal size, got {s.size} and {y.size}.")
    if s.size == 0:
        raise ValueError("`scores` and `labels` must be non-empty, got 0 examples.")
    if not np.all(np.isfinite(s)):
        raise ValueError("`scores` must be finite, got NaN or inf.")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"`labels` must be 0 or 1, got values {np.unique(y)[:5]}.")
    return s, y


def pool_adjacent_violators(y: np.ndarray, w: np.ndarray = None) -> np.ndarray:
    """Isotonic (non-decreasing) least-squares fit of `y` in the given order.

    Args:
      y: `[N]` targets, already sorted by the score.
      w: `[N]` positive weights (default ones).

    Returns:
      `[N]` non-decreasing fitted values (weighted means of pooled blocks).
    """
    y = np.asarray(y, np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, np.float64)
    means, weights, sizes = [], [], []
    for yi, wi in zip(y, w):
        means.append(yi)
        weights.append(wi)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m, wt, n = means.pop(), weights.pop(), sizes.pop()
            total = weights[-1] + wt
            means[-1] = (means[-1] * weights[-1] + m * wt) / total
            weights[-1] = total
            sizes[-1] += n
    return np.repeat(means, sizes)


def fit_platt(scores, labels, steps: int = 100) -> Tuple[float, float]:
    """Fits `sigmoid(a * s + b)` to labels by Newton's method on the log-loss.

    Platt (1999) with a small ridge (1e-6) on the Hessian for separable data.

    Returns:
      `(a, b)` floats.
    """
    s, y = check_scores_labels(scores, labels)
    x = np.stack([s, np.ones_like(s)], axis=1)
    theta = np.array([1.0, 0.0])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -30, 30)))
        grad = x.T @ (p - y)
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        delta = np.linalg.solve(hess, grad)
        theta = theta - delta
        if np.max(np.abs(delta)) < 1e-10:
            break
    return float(theta[0]), float(theta[1])


def fit_isotonic(scores, labels) -> Tuple[np.ndarray, np.ndarray]:
    """Isotonic regression of labels on scores: knots `(x, y)` for linear interpolation.

    Ties in score are pooled first (one knot per distinct score, weighted by count).

    Returns:
      `(x, y)`: `[K]` increasing distinct scores and `[K]` non-decreasing probabilities.
    """
    s, y = check_scores_labels(scores, labels)
    xs, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=y)
    return xs, pool_adjacent_violators(sums / counts, counts.astype(np.float64))


def log_loss(probabilities, labels, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy, probabilities clipped to `[eps, 1 - eps]`."""
    p = np.clip(np.asarray(probabilities, np.float64).reshape(-1), eps, 1 - eps)
    y = np.asarray(labels, np.float64).reshape(-1)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def expected_calibration_error(probabilities, labels, num_bins: int = 10) -> float:
    """ECE over equal-width bins of [0, 1]: `sum_b n_b / N * |mean(y)_b - mean(p)_b|`."""
    p, y = np.asarray(probabilities, np.float64).reshape(-1), np.asarray(labels).reshape(-1)
    if num_bins < 1:
        raise ValueError(f"`num_bins` must be >= 1, got {num_bins}.")
    bins = np.minimum((p * num_bins).astype(np.int64), num_bins - 1)
    n = np.bincount(bins, minlength=num_bins)
    gap = np.abs(np.bincount(bins, y, num_bins) - np.bincount(bins, p, num_bins))
    return float(gap.sum() / max(n.sum(), 1))
