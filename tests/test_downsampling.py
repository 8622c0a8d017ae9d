"""downsample_positives / keep_probability: formula, statistics, determinism, batching, errors."""

import math

import tfrs_negatives as tfn
from tfrs_negatives.data import downsample_positives, keep_probability

import numpy as np
import pytest
import tensorflow as tf

NUM_ITEMS, NUM_EXAMPLES = 50, 20_000
GOLDEN = (3 + math.sqrt(5)) / 2  # z <= GOLDEN * a is always kept


def _reference_keep(z, a):
    z = np.asarray(z, np.float64)
    return np.minimum(1.0, (np.sqrt(z / a) + 1) * a / z)


def _zipf_items(n=NUM_EXAMPLES, num_items=NUM_ITEMS, seed=0):
    p = 1 / np.arange(1, num_items + 1)
    return np.random.default_rng(seed).choice(num_items, size=n, p=p / p.sum()).astype(np.int64)


def _examples(items):
    """Unbatched dict examples: the item, the row index and a [3] feature derived from the row."""
    rows = np.arange(len(items), dtype=np.int64)
    features = np.stack([rows, 2 * rows, 3 * rows], axis=1).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices({"item": items, "row": rows, "feature": features})


def _kept_rows(dataset):
    """Rows of a downsampled dataset (batched or not), collected in large batches."""
    if dataset.element_spec["row"].shape.rank == 0:
        dataset = dataset.batch(4096)
    return np.concatenate([np.reshape(b["row"], [-1]) for b in dataset.as_numpy_iterator()])


def _item(x):
    return x["item"]


# keep_probability -------------------------------------------------------------------------


def test_keep_probability_matches_numpy_reference():
    z = np.concatenate([np.geomspace(1e-7, 1.0, 200), [1.0]])
    for a in (1e-5, 1e-3, 0.05):
        got = keep_probability(z, a)
        assert got.dtype == tf.float64  # float input keeps its dtype
        np.testing.assert_allclose(got.numpy(), _reference_keep(z, a), rtol=1e-12)
    got32 = keep_probability(z.astype(np.float32), 1e-3).numpy()
    np.testing.assert_allclose(got32, _reference_keep(z, 1e-3), rtol=1e-5)


def test_keep_probability_hand_worked_values():
    a = 1e-3
    # z = 4a: (sqrt(4) + 1) / 4 = 0.75.
    assert keep_probability(4 * a, a).numpy() == pytest.approx(0.75, rel=1e-6)
    # z = 100a: (10 + 1) / 100 = 0.11; z = 1: sqrt(1e-3) + 1e-3.
    assert keep_probability(100 * a, a).numpy() == pytest.approx(0.11, rel=1e-6)
    assert keep_probability(1.0, a).numpy() == pytest.approx(math.sqrt(a) + a, rel=1e-6)
    # Up to z = a (3 + sqrt 5) / 2 every example is kept (sqrt(a/z) + a/z >= 1); just above, not.
    np.testing.assert_array_equal(
        keep_probability([1e-9, 0.5 * a, a, 2 * a, GOLDEN * a * (1 - 1e-6)], a).numpy(), 1.0
    )
    assert keep_probability(2.7 * a, a).numpy() < 1.0
    assert keep_probability(0.0, a).numpy() == 1.0  # z = 0: an unseen item is kept


def test_keep_probability_takes_ints_lists_and_tensors():
    np.testing.assert_allclose(keep_probability([1], 0.25).numpy(), [0.75])
    assert keep_probability(tf.constant([[0.04]]), 0.01).shape == [1, 1]


# Statistics on a Zipf stream --------------------------------------------------------------


@pytest.mark.parametrize("sample", [1e-3, 1e-2])
def test_kept_counts_follow_keep_probability_on_zipf_data(sample):
    items = _zipf_items()
    ids, counts = np.unique(items, return_counts=True)
    out = downsample_positives(_examples(items), _item, (ids, counts), sample=sample, seed=11)
    kept = np.bincount(items[_kept_rows(out)], minlength=NUM_ITEMS)[ids]

    p = _reference_keep(counts / counts.sum(), sample)
    expected, sigma = counts * p, np.sqrt(counts * p * (1 - p))
    assert np.all(np.abs(kept - expected) <= 4 * sigma + 1e-6), (kept, expected, sigma)
    total_sigma = np.sqrt(np.sum(sigma**2))
    assert abs(kept.sum() - expected.sum()) <= 4 * total_sigma

    # The head is damped (the top item keeps well under half), and its kept count grows
    # like sqrt(n): it loses its lead; the rare items (z <= 2.618 a) are all kept.
    assert kept[0] < 0.5 * counts[0]
    assert kept[0] / kept[-1] < counts[0] / counts[-1]
    rare = counts / counts.sum() <= GOLDEN * sample
    np.testing.assert_array_equal(kept[rare], counts[rare])
    if sample == 1e-2:
        assert rare.sum() >= 35  # most of the 50 items are never damped at a = 0.01


def test_estimator_and_counts_pair_agree_and_strings_work():
    items = _zipf_items(3000)
    titles = np.array([f"title {i}".encode() for i in items])
    rows = np.arange(len(items))
    dataset = tf.data.Dataset.from_tensor_slices({"title": titles, "row": rows})
    estimator = tfn.ExactFrequencyEstimator.from_dataset(dataset.map(lambda x: x["title"]))
    ids, counts = np.unique(titles, return_counts=True)

    def title(x):
        return x["title"]

    by_estimator = _kept_rows(downsample_positives(dataset, title, estimator, 0.01, seed=5))
    by_pair = _kept_rows(downsample_positives(dataset, title, (ids, counts), 0.01, seed=5))
    np.testing.assert_array_equal(by_estimator, by_pair)
    assert 0 < len(by_pair) < len(items)


def test_learning_estimator_is_read_not_updated():
    items = _zipf_items(500)
    estimator = tfn.StreamingFrequencyEstimator(num_buckets=101, num_hashes=1)
    estimator(tf.constant(items), training=True)
    before = [v.numpy().copy() for v in estimator.weights]
    out = downsample_positives(_examples(items), _item, estimator, sample=0.01, seed=1)
    assert 0 < len(_kept_rows(out)) < len(items)
    for old, new in zip(before, estimator.weights):
        np.testing.assert_array_equal(old, new.numpy())


# Determinism and batching -----------------------------------------------------------------


def test_same_seed_same_examples_other_seed_other_examples():
    items = _zipf_items(4000)
    ids, counts = np.unique(items, return_counts=True)
    out = downsample_positives(_examples(items), _item, (ids, counts), 0.01, seed=42)
    first = _kept_rows(out)
    np.testing.assert_array_equal(first, _kept_rows(out))  # second iteration
    again = downsample_positives(_examples(items), _item, (ids, counts), 0.01, seed=42)
    np.testing.assert_array_equal(first, _kept_rows(again))
    other = downsample_positives(_examples(items), _item, (ids, counts), 0.01, seed=43)
    assert not np.array_equal(first, _kept_rows(other))
    assert np.all(np.diff(first) > 0)  # order is kept


def test_no_seed_draws_again_each_iteration():
    items = _zipf_items(4000)
    ids, counts = np.unique(items, return_counts=True)
    out = downsample_positives(_examples(items), _item, (ids, counts), 0.01)
    first, second = _kept_rows(out), _kept_rows(out)
    assert not np.array_equal(first, second)
    p = _reference_keep(counts / counts.sum(), 0.01)
    expected, sigma = np.sum(counts * p), np.sqrt(np.sum(counts * p * (1 - p)))
    batched = downsample_positives(_examples(items).batch(100), _item, (ids, counts), 0.01)
    third, fourth = _kept_rows(batched), _kept_rows(batched)
    assert not np.array_equal(third, fourth)
    for kept in (first, second, third, fourth):
        assert abs(len(kept) - expected) <= 4 * sigma


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_batched_dataset_keeps_the_same_examples_as_unbatched(batch_size):
    items = _zipf_items(5000)
    ids, counts = np.unique(items, return_counts=True)
    unbatched = _kept_rows(downsample_positives(_examples(items), _item, (ids, counts), 0.01, 9))
    out = downsample_positives(
        _examples(items).batch(batch_size), _item, (ids, counts), sample=0.01, seed=9
    )
    batches = list(out.as_numpy_iterator())
    rows = np.concatenate([b["row"] for b in batches])
    np.testing.assert_array_equal(rows, unbatched)
    for b in batches:  # components stay aligned; empty batches are dropped
        assert 0 < len(b["row"]) <= batch_size
        np.testing.assert_array_equal(b["item"], items[b["row"]])
        np.testing.assert_array_equal(b["feature"][:, 1], 2 * b["row"])


def test_tuple_elements_and_ragged_batches():
    items = _zipf_items(600)
    ids, counts = np.unique(items, return_counts=True)
    rows = np.arange(len(items))
    pairs = tf.data.Dataset.from_tensor_slices((rows, items))
    out = downsample_positives(pairs, lambda row, item: item, (ids, counts), 0.01, seed=3)
    kept_pairs = np.array([row for row, _ in out.as_numpy_iterator()])
    expected = _kept_rows(downsample_positives(_examples(items), _item, (ids, counts), 0.01, 3))
    np.testing.assert_array_equal(kept_pairs, expected)

    tags = tf.data.Dataset.from_tensor_slices(rows).map(
        lambda r: {"row": r, "item": tf.gather(items, r), "tags": tf.range(r % 4)}
    )
    out = downsample_positives(tags.ragged_batch(32), _item, (ids, counts), 0.01, seed=3)
    batches = list(out.as_numpy_iterator())
    np.testing.assert_array_equal(np.concatenate([b["row"] for b in batches]), expected)
    for b in batches:
        assert [len(t) for t in b["tags"]] == list(b["row"] % 4)


# Errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", [0, -1e-3, float("nan"), float("inf")])
def test_bad_sample_value(sample):
    dataset = _examples(_zipf_items(10))
    with pytest.raises(ValueError, match=r"`sample` must be a finite number > 0.*got"):
        downsample_positives(dataset, _item, ([0], [1]), sample=sample)
    with pytest.raises(ValueError, match="`sample`"):
        keep_probability(0.1, sample)


@pytest.mark.parametrize("sample", ["1e-3", True, None])
def test_bad_sample_type(sample):
    with pytest.raises(TypeError, match=r"`sample` must be a number > 0.*got"):
        downsample_positives(_examples(_zipf_items(10)), _item, ([0], [1]), sample=sample)


@pytest.mark.parametrize(
    ("id_fn", "batch", "error", "pattern"),
    [
        (lambda x: tf.cast(x["item"], tf.float32), False, TypeError, "got dtype float32"),
        (lambda x: x, False, TypeError, r"`id_fn` must return .*got \{"),
        (lambda x: tf.reshape(x["item"], [-1, 1]), True, ValueError, r"got shape \(None, 1\)"),
        (lambda x: x["feature"], True, TypeError, "float32"),
        (
            lambda x: tf.numpy_function(lambda i: i, [x["item"]], tf.int64),
            False,
            ValueError,
            "unknown|tf.ensure_shape",
        ),
    ],
)
def test_bad_id_fn(id_fn, batch, error, pattern):
    dataset = _examples(_zipf_items(10))
    dataset = dataset.batch(4) if batch else dataset
    with pytest.raises(error, match=pattern) as info:
        downsample_positives(dataset, id_fn, ([0], [1]), seed=0)
    assert "`id_fn` must return a scalar (unbatched) or [n] (batched)" in str(info.value)


@pytest.mark.parametrize(
    "frequency", [{0: 3}, 0.5, None, ([0], [1], [2]), np.array([0.1, 0.9]), "counts"]
)
def test_bad_frequency(frequency):
    with pytest.raises(TypeError, match=r"`frequency` must be a SamplingProbabilityEstimator"):
        downsample_positives(_examples(_zipf_items(10)), _item, frequency, seed=0)


def test_frequency_pair_checked_by_exact_estimator():
    with pytest.raises(ValueError, match="`probabilities` must have one value per id"):
        downsample_positives(_examples(_zipf_items(10)), _item, ([0, 1], [1, 2, 3]))


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (lambda ds: (np.arange(3), _item, ([0], [1])), TypeError,
         r"`dataset` must be a tf.data.Dataset, got ndarray"),
        (lambda ds: (ds, "item", ([0], [1])), TypeError, r"`id_fn` must be a callable.*got str"),
        (lambda ds: (ds, _item, ([0], [1]), 1.5), TypeError,
         r"`seed` must be a Python int or None, got float"),
        (lambda ds: (ds, _item, ([0], [1]), 2**64), ValueError, r"`seed` must fit in int64"),
    ],
    ids=["dataset", "id_fn", "seed type", "seed range"],
)  # fmt: skip
def test_bad_dataset_id_fn_and_seed(arguments, error, message):
    args = arguments(_examples(_zipf_items(10)))
    seed = {"seed": args[3]} if len(args) > 3 else {}
    with pytest.raises(error, match=message):
        downsample_positives(*args[:3], **seed)


def test_batched_element_with_scalar_component():
    dataset = _examples(_zipf_items(10)).batch(4).map(lambda x: {**x, "k": tf.constant(1)})
    with pytest.raises(ValueError, match=r"`dataset`: .*scalar component"):
        downsample_positives(dataset, _item, ([0], [1]), seed=0)
