"""`tfrs_negatives.beam.count_items` against NumPy, and what the estimators make of its file."""

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow loads)

import numpy as np
import pytest
import tensorflow as tf

beam = pytest.importorskip("apache_beam")

from tfrs_negatives.beam import count_items  # noqa: E402
from tfrs_negatives.data.offline import counts_for, load_counts  # noqa: E402
from tfrs_negatives.estimators import ExactFrequencyEstimator  # noqa: E402


def _write(path, rows):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for features in rows:
            example = tf.train.Example()
            for key, value in features.items():
                feature = example.features.feature[key]
                if isinstance(value, float):
                    feature.float_list.value.append(value)
                elif isinstance(value, bytes):
                    feature.bytes_list.value.append(value)
                else:
                    feature.int64_list.value.append(value)
            writer.write(example.SerializeToString())


def test_counts_equal_numpy_and_feed_the_exact_estimator(tmp_path):
    rng = np.random.default_rng(0)
    items = rng.zipf(1.5, 600) % 97 + 10_000
    for part in range(3):
        _write(tmp_path / f"log-{part}.tfrecord", [{"item_id": int(i)} for i in items[part::3]])
    path = count_items(
        str(tmp_path / "log-*"),
        str(tmp_path / "out" / "counts"),
        pipeline_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    )
    ids, counts = load_counts(path)
    expected_ids, expected_counts = np.unique(items, return_counts=True)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(counts, expected_counts)
    estimator = ExactFrequencyEstimator(*load_counts(path))
    got = estimator(tf.constant(expected_ids[:5])).numpy()
    np.testing.assert_allclose(got, expected_counts[:5] / items.size, rtol=1e-6)
    catalogue = np.r_[expected_ids[::-1], 1]  # another order, one id never seen
    np.testing.assert_array_equal(counts_for(catalogue, path), np.r_[expected_counts[::-1], 0])


def test_weighted_string_counts(tmp_path):
    rows = [{"title": b"a", "w": 2.0}, {"title": b"b", "w": 0.5}, {"title": b"a", "w": 1.0}]
    _write(tmp_path / "log.tfrecord", rows)
    path = count_items(str(tmp_path / "log.tfrecord"), str(tmp_path / "c"), "title", "w")
    ids, counts = load_counts(path)
    assert ids.tolist() == [b"a", b"b"] and counts.tolist() == [3.0, 0.5]


def test_missing_key_names_it_and_leaves_nothing(tmp_path):
    _write(tmp_path / "log.tfrecord", [{"user_id": 1}])
    with pytest.raises(Exception, match="no feature 'item_id'"):
        count_items(str(tmp_path / "log.tfrecord"), str(tmp_path / "out" / "c"))
    assert not list((tmp_path / "out").iterdir())


def test_existing_output_is_kept_without_overwrite(tmp_path):
    _write(tmp_path / "log.tfrecord", [{"item_id": 1}])
    path = count_items(str(tmp_path / "log.tfrecord"), str(tmp_path / "c"))
    with pytest.raises(FileExistsError, match="--overwrite"):
        count_items(str(tmp_path / "log.tfrecord"), str(tmp_path / "c"))
    _write(tmp_path / "log.tfrecord", [{"item_id": 2}])
    count_items(str(tmp_path / "log.tfrecord"), str(tmp_path / "c"), overwrite=True)
    assert load_counts(path)[0].tolist() == [2]


def test_mixed_id_kinds_are_refused(tmp_path):
    _write(tmp_path / "log.tfrecord", [{"item_id": 1}, {"item_id": b"a"}])
    with pytest.raises(Exception, match="the counted ids mix int64 and bytes"):
        count_items(str(tmp_path / "log.tfrecord"), str(tmp_path / "out" / "c"))
    assert not list((tmp_path / "out").iterdir())
