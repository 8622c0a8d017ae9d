"""`mine_windows(index="scann")`: window recall against brute force; indexes built once, loaded."""

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow loads)

import numpy as np
import pytest
import tensorflow as tf

beam = pytest.importorskip("apache_beam")
pytest.importorskip("scann")

from tfrs_negatives.beam import mine_windows, shard_index  # noqa: E402
from tfrs_negatives.beam.records import example_bytes  # noqa: E402

WINDOW = (10, 60)


def _write_embedded(path, ids, embeddings):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for item_id, embedding in zip(ids, embeddings):
            example = tf.train.Example.FromString(example_bytes(id=[int(item_id)]))
            example.features.feature["embedding"].float_list.value.extend(embedding.tolist())
            writer.write(example.SerializeToString())


def _clustered(rng, n, dim, clusters=30):
    centres = rng.normal(size=[clusters, dim])
    rows = centres[rng.integers(0, clusters, n)] + 0.4 * rng.normal(size=[n, dim])
    return rows.astype(np.float32)


def _brute_force_windows(anchor_ids, anchors, item_ids, items):
    scores = anchors.astype(np.float64) @ items.astype(np.float64).T
    windows = {}
    for anchor_id, row in zip(anchor_ids, scores):
        order = [int(item_ids[i]) for i in np.lexsort((item_ids, -row))]
        windows[int(anchor_id)] = [i for i in order if i != anchor_id][WINDOW[0] : WINDOW[1]]
    return windows


def _read(prefix):
    windows = {}
    for path in tf.io.gfile.glob(f"{prefix}-*-of-*"):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            windows[feature["anchor"].int64_list.value[0]] = list(
                feature["negatives"].int64_list.value
            )
    return windows


def test_scann_windows_recall_brute_force_and_shards_are_built_once(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    item_ids = 5 + 3 * rng.permutation(8000)  # sparse, not row numbers
    items = _clustered(rng, 8000, 16)
    _write_embedded(tmp_path / "catalogue.tfrecord", item_ids, items)
    rows = rng.choice(8000, 150, replace=False)
    _write_embedded(tmp_path / "anchors.tfrecord", item_ids[rows], items[rows])
    calls = {"build": 0, "load": 0}
    build, load = shard_index._scann_searcher, shard_index.ShardIndex._load_scann

    def counted_build(*args):
        calls["build"] += 1
        return build(*args)

    def counted_load(directory):
        calls["load"] += 1
        return load(directory)

    monkeypatch.setattr(shard_index, "_scann_searcher", counted_build)
    monkeypatch.setattr(shard_index.ShardIndex, "_load_scann", staticmethod(counted_load))
    prefix = str(tmp_path / "out" / "mined")
    mine_windows(
        str(tmp_path / "catalogue.tfrecord"), str(tmp_path / "anchors.tfrecord"), prefix,
        WINDOW, num_shards=2, index="scann", anchor_batch=64,
    )  # fmt: skip
    assert calls == {"build": 2, "load": 2}  # one index per shard, loaded by its searcher
    got = _read(prefix)
    expected = _brute_force_windows(item_ids[rows], items[rows], item_ids, items)
    assert set(got) == set(expected)
    assert all(len(window) == WINDOW[1] - WINDOW[0] for window in got.values())
    recall = np.mean([len(set(got[a]) & set(expected[a])) / len(expected[a]) for a in expected])
    assert recall >= 0.95, recall
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_a_saved_scann_shard_loads_and_ranks_as_exact_on_its_candidates(tmp_path):
    rng = np.random.default_rng(4)
    items = _clustered(rng, 3000, 8)
    ids = list(range(100, 3100))
    info = shard_index.save_shard(str(tmp_path / "s"), items, ids, "scann", 40)
    assert info == shard_index.ShardInfo(str(tmp_path / "s"), 3000, 8)
    assert (tmp_path / "s" / "scann" / "scann_config.pb").exists()
    scann_top = shard_index.ShardIndex(str(tmp_path / "s"), "scann").top(items[:20], [40] * 20)
    exact_top = shard_index.ShardIndex(str(tmp_path / "s"), "exact").top(items[:20], [40] * 20)
    overlap = np.mean([len(set(a.ids) & set(b.ids)) / 40 for a, b in zip(scann_top, exact_top)])
    assert overlap >= 0.95, overlap
    for anchor, part in zip(items[:20], scann_top):  # exact float64 scores, best first
        exact = items[np.asarray(part.ids) - 100].astype(np.float64) @ anchor.astype(np.float64)
        np.testing.assert_array_equal(part.scores, exact)
        assert np.all(np.diff(part.scores) <= 0) and len(part.ids) == 40
