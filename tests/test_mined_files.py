import tfrs_negatives  # noqa: F401
from tfrs_negatives.mining.mined_files import read_mined_windows

import numpy as np
import pytest
import tensorflow as tf


def _write(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for rec in records:
            feats = {}
            for key, vals in rec.items():
                if vals and isinstance(vals[0], bytes):
                    feats[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=vals))
                else:
                    feats[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=vals))
            ex = tf.train.Example(features=tf.train.Features(feature=feats))
            writer.write(ex.SerializeToString())


def test_reads_shards_in_order(tmp_path):
    _write(tmp_path / "m-0", [{"anchor": [7], "negatives": [3, 1, 9]}])
    _write(tmp_path / "m-1", [{"anchor": [2], "negatives": [5]}, {"anchor": [4], "negatives": []}])
    anchors, windows = read_mined_windows(str(tmp_path / "m-*"))
    np.testing.assert_array_equal(anchors, [7, 2, 4])
    assert [w.tolist() for w in windows] == [[3, 1, 9], [5], []]


def test_bytes_ids(tmp_path):
    _write(tmp_path / "m", [{"anchor": [b"a"], "negatives": [b"x", b"y"]}])
    anchors, windows = read_mined_windows(str(tmp_path / "m"))
    assert anchors.tolist() == [b"a"] and windows[0].tolist() == [b"x", b"y"]


@pytest.mark.parametrize("records, message", [
    ([{"negatives": [1]}], "Record 0 .* no `anchor`"),
    ([{"anchor": [1]}, {"anchor": [2], "negatives": [1]}], "no `negatives`"),
    ([{"anchor": [1], "negatives": [2]}, {"anchor": [b"a"], "negatives": [b"b"]}], "one kind"),
    ([{"anchor": [1], "negatives": [2]}, {"anchor": [1], "negatives": [3]}], "also in"),
])
def test_bad_input(tmp_path, records, message):
    _write(tmp_path / "m", records)
    with pytest.raises(ValueError, match=message):
        read_mined_windows(str(tmp_path / "m"))


def test_no_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        read_mined_windows(str(tmp_path / "none-*"))
