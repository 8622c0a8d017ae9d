"""Mined negatives carried by the examples: `FromFeatures`, `with_mined_negatives`, and
`load_mined_table`, against NumPy and through `fit`."""

import tfrs_negatives as tfn
from tfrs_negatives.beam.records import example_bytes
from tfrs_negatives.data import with_mined_negatives
from tfrs_negatives.mining import load_mined_table
from tfrs_negatives.negatives import FromFeatures, InBatch, Mined

import numpy as np
import pytest
import tensorflow as tf
from tests_support import NUM_ITEMS, TwoTower, interactions

DIM = 4


def _loss_of_rows(rows):
    return sum(np.log(np.exp(r).sum()) - r[0] for r in rows)


def _reference(queries, table_emb, pos, negative_rows, count):
    """Softmax with in-batch negatives (accidental hits removed) and the first `count`
    valid mined entries of each row (padding -1 skipped, the row's positive dropped)."""
    scores = queries.astype(np.float64) @ table_emb.T.astype(np.float64)
    rows = []
    for i in range(len(pos)):
        terms = [scores[i, pos[i]]]
        terms += [scores[i, pos[j]] for j in range(len(pos)) if pos[j] != pos[i]]
        valid = [r for r in negative_rows[i] if r >= 0][:count]
        terms += [scores[i, r] for r in valid if r != pos[i]]
        rows.append(np.array(terms))
    return _loss_of_rows(rows)


@pytest.mark.parametrize("kind", ["int", "string"])
def test_columns_from_features_match_numpy(kind):
    rng = np.random.default_rng(0)
    n_items = 10
    table_emb = rng.normal(size=(n_items, DIM)).astype(np.float32)
    pos = np.array([0, 1, 1, 4])
    queries = rng.normal(size=(4, DIM)).astype(np.float32)
    negative_rows = np.array([[2, -1, 3, 5], [1, 5, 6, 7], [-1, -1, 8, -1], [9, 4, 2, -1]])
    names = np.array([f"item{i}".encode() for i in range(n_items)], object)
    if kind == "int":
        catalogue, ids, negative_ids = 100 + np.arange(n_items), 100 + pos, 100 + negative_rows
        negative_ids[negative_rows < 0] = -1
        tower = lambda i: tf.gather(table_emb, i - 100)  # noqa: E731
    else:
        catalogue, ids = names, names[pos]
        negative_ids = np.where(negative_rows < 0, b"", names[np.maximum(negative_rows, 0)])
        lookup = tf.keras.layers.StringLookup(vocabulary=names.tolist(), num_oov_indices=0)
        tower = lambda i: tf.gather(table_emb, lookup(i))  # noqa: E731
    source = FromFeatures(catalogue, count=3, sample="top")
    task = tfn.CorrectedRetrieval(negatives=[InBatch(), source], correction=None)
    loss = task(
        tf.constant(queries),
        tf.constant(table_emb[pos]),
        candidate_ids=tf.constant(ids),
        candidate_tower=tower,
        negative_ids=tf.constant(negative_ids),
    ).numpy()
    np.testing.assert_allclose(loss, _reference(queries, table_emb, pos, negative_rows, 3), 1e-5)
    assert int(source.fallbacks.numpy()) == 0


def test_random_draws_take_only_valid_entries_and_empty_rows_fall_back():
    source = FromFeatures(np.arange(50), count=4, seed=1)
    negative_ids = tf.constant([[7, -1, 9, -1], [-1, -1, -1, -1], [3, 3, 3, 3]], tf.int64)
    for _ in range(5):
        ids, _, fallback, valid = source.sample_rows(negative_ids)
        assert set(ids.numpy()[0]) <= {7, 9} and set(ids.numpy()[2]) == {3}
        assert fallback.numpy().tolist() == [False, True, False] and valid.numpy().all()
    assert int(source.fallbacks.numpy()) == 5


def test_unknown_ids_and_missing_or_unread_features_are_errors():
    source = FromFeatures(np.arange(10), count=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in its catalogue"):
        source.sample_rows(tf.constant([[1, 42]], tf.int64))
    with pytest.raises(ValueError, match=r"\[B, W\]"):
        source.sample_rows(tf.constant([1, 2], tf.int64))
    with pytest.raises(TypeError, match="negative_ids"):
        source.sample_rows(tf.constant([["a", "b"]]))
    args = (tf.zeros([2, DIM]), tf.zeros([2, DIM]))
    kwargs = {"candidate_ids": tf.constant([0, 1]), "candidate_tower": lambda i: tf.zeros([2, DIM])}
    with pytest.raises(ValueError, match="`negative_ids` is required"):
        tfn.CorrectedRetrieval(negatives=[InBatch(), source], correction=None)(*args, **kwargs)
    with pytest.raises(ValueError, match="no negative source reads it"):
        tfn.CorrectedRetrieval()(*args, **kwargs, negative_ids=tf.constant([[1], [2]]))


def test_config_round_trips():
    source = FromFeatures(np.arange(5), count=2, sample="top", margin=0.1, seed=3, name="ff")
    again = FromFeatures.from_config(source.get_config())
    assert again.get_config() == source.get_config()


def _write_mined(path, windows):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for anchor, negatives in windows.items():
            writer.write(example_bytes(anchor=[anchor], negatives=negatives))


def test_with_mined_negatives_pads_and_marks_unmined_anchors(tmp_path):
    _write_mined(tmp_path / "mined-00000-of-00001", {5: [1, 2, 3], 6: [4]})
    dataset = tf.data.Dataset.from_tensor_slices({"item": np.array([5, 7, 6], np.int64)})
    pattern = str(tmp_path / "mined-*")
    got = next(iter(with_mined_negatives(dataset.batch(3), pattern, "item")))
    assert got["mined_negatives"].numpy().tolist() == [[1, 2, 3], [-1, -1, -1], [4, -1, -1]]
    unbatched = [e["mined_negatives"].numpy().tolist() for e in with_mined_negatives(
        dataset, pattern, "item", width=4)]  # fmt: skip
    assert unbatched[0] == [1, 2, 3, -1]
    with pytest.raises(ValueError, match="never truncated"):
        with_mined_negatives(dataset, pattern, "item", width=2)
    with pytest.raises(ValueError, match="not a feature"):
        with_mined_negatives(dataset, pattern, "user")
    strings = tf.data.Dataset.from_tensor_slices({"item": ["a"]})
    with pytest.raises(TypeError, match="integers"):
        with_mined_negatives(strings, pattern, "item")


def test_load_mined_table_maps_ids_to_catalogue_rows(tmp_path):
    _write_mined(tmp_path / "m-00000-of-00001", {b"b": [b"c", b"a"], b"a": [b"b"]})
    catalogue = np.array([b"a", b"b", b"c"], object)
    table = load_mined_table(str(tmp_path / "m-*"), catalogue)
    neighbours, counts = table(tf.constant(["a", "b", "z"]))
    assert neighbours.numpy().tolist() == [[1, -1], [2, 0], [-1, -1]]
    assert counts.numpy().tolist() == [1, 2, 0]
    Mined(table, catalogue, count=2)  # the table is bound to this catalogue
    with pytest.raises(ValueError, match="never truncated"):
        load_mined_table(str(tmp_path / "m-*"), catalogue, window=1)
    with pytest.raises(ValueError, match="not in the catalogue, e.g. b'c' \\(anchor b'b'\\)"):
        load_mined_table(str(tmp_path / "m-*"), catalogue[:2])


class FeatureTwoTower(TwoTower):
    def compute_loss(self, features, training=False):
        return self.task(
            self.query_tower(features["user"]),
            self.item_tower(features["item"]),
            candidate_ids=features["item"],
            candidate_tower=self.item_tower,
            training=training,
            negative_ids=features["mined_negatives"],
        )


def test_fit_reads_the_mined_feature_and_survives_a_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    windows = {a: rng.choice(NUM_ITEMS, 6, replace=False).tolist() for a in range(0, NUM_ITEMS, 2)}
    _write_mined(tmp_path / "mined-00000-of-00001", windows)
    data = with_mined_negatives(interactions(), str(tmp_path / "mined-*"), "item")
    source = FromFeatures(np.arange(NUM_ITEMS), count=3, seed=0)
    model = FeatureTwoTower(tfn.CorrectedRetrieval(negatives=[InBatch(), source]))
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    history = model.fit(data, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    fallbacks = int(source.fallbacks.numpy())
    assert fallbacks > 0  # odd items were not mined
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    source.fallbacks.assign(0)
    tf.train.Checkpoint(model=model).restore(path)
    assert int(source.fallbacks.numpy()) == fallbacks
