"""subsample_negatives: positives kept, rate of negatives, determinism, weights, errors."""

import tfrs_negatives as tfn  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from tfrs_negatives.ranking import subsample_negatives

import numpy as np
import pytest
import tensorflow as tf

N = 20_000


def _log(n=N, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.1).astype(np.int64)
    return labels, tf.data.Dataset.from_tensor_slices(
        {"row": np.arange(n, dtype=np.int64), "click": labels}
    )


def _rows(ds):
    return np.array([int(x["row"]) for x in ds.as_numpy_iterator()])


@pytest.mark.parametrize("rate", [0.5, 0.1])
def test_keeps_positives_and_rate_of_negatives(rate):
    labels, ds = _log()
    kept = _rows(subsample_negatives(ds, rate, "click", seed=3))
    positives = np.flatnonzero(labels == 1)
    assert np.isin(positives, kept).all()
    kept_negatives = np.setdiff1d(kept, positives).size
    negatives = int((labels == 0).sum())
    sigma = np.sqrt(negatives * rate * (1 - rate))
    assert abs(kept_negatives - rate * negatives) < 4 * sigma


def test_deterministic_across_iterations_and_runs_and_seed_matters():
    _, ds = _log(4000)
    sub = subsample_negatives(ds, 0.3, "click", seed=7)
    first, second = _rows(sub), _rows(sub)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, _rows(subsample_negatives(ds, 0.3, "click", seed=7)))
    assert not np.array_equal(first, _rows(subsample_negatives(ds, 0.3, "click", seed=8)))


def test_id_key_is_stable_under_reordering():
    _, ds = _log(3000)
    kept = set(_rows(subsample_negatives(ds, 0.3, "click", seed=1, id_key="row")))
    shuffled = ds.shuffle(3000, seed=5)
    kept_shuffled = set(_rows(subsample_negatives(shuffled, 0.3, "click", seed=1, id_key="row")))
    assert kept == kept_shuffled
    by_fn = subsample_negatives(shuffled, 0.3, "click", seed=1, key_fn=lambda x: x["row"])
    assert set(_rows(by_fn)) == kept


def test_importance_weights():
    labels, ds = _log(3000)
    out = list(subsample_negatives(ds, 0.25, "click", seed=0, weight_key="w").as_numpy_iterator())
    w = np.array([x["w"] for x in out])
    y = np.array([x["click"] for x in out])
    np.testing.assert_allclose(w, np.where(y == 1, 1.0, 4.0))
    # Weighted negative count estimates the full count (within 4 sigma of the binomial).
    negatives = (labels == 0).sum()
    assert abs(w[y == 0].sum() - negatives) < 4 * 4.0 * np.sqrt(negatives * 0.25 * 0.75)


def test_rate_one_keeps_everything():
    _, ds = _log(500)
    np.testing.assert_array_equal(_rows(subsample_negatives(ds, 1.0, "click")), np.arange(500))


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5])
def test_bad_rate(rate):
    _, ds = _log(10)
    with pytest.raises(ValueError, match="`rate` must be in"):
        subsample_negatives(ds, rate, "click")


def test_rate_not_number():
    _, ds = _log(10)
    with pytest.raises(TypeError, match="`rate`"):
        subsample_negatives(ds, "0.1", "click")


def test_missing_label_key():
    _, ds = _log(10)
    with pytest.raises(ValueError, match="`label_key`='label' is not a feature"):
        subsample_negatives(ds, 0.5, "label")


def test_not_a_dict_dataset():
    with pytest.raises(TypeError, match="dicts of features"):
        subsample_negatives(tf.data.Dataset.range(3), 0.5, "click")


def test_labels_outside_zero_one():
    ds = tf.data.Dataset.from_tensor_slices({"click": np.array([0, 1, 2])})
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be 0 or 1"):
        list(subsample_negatives(ds, 0.5, "click").as_numpy_iterator())
