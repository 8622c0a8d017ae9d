"""`save_tower`: the loaded `serving_default` signature returns the tower's own embeddings."""

from tfrs_negatives.export import save_tower

import numpy as np
import pytest
import tensorflow as tf
from tests_support import seeded_string_towers

DIM = 6
USERS = np.array([f"user{i}" for i in range(20)])
ITEMS = np.array([f"item{i}" for i in range(30)])


def _dict_tower():
    """Functional tower over {"user_id": string, "age": float32}."""
    user = tf.keras.Input(shape=(), dtype=tf.string, name="user_id")
    age = tf.keras.Input(shape=(), dtype=tf.float32, name="age")
    embedded = tf.keras.layers.Embedding(len(USERS) + 1, DIM)(
        tf.keras.layers.StringLookup(vocabulary=USERS)(user)
    )
    return tf.keras.Model(
        {"user_id": user, "age": age}, embedded + tf.keras.layers.Dense(DIM)(age[:, None])
    )


def test_loaded_signature_equals_the_sequential_tower(tmp_path):
    _, items = seeded_string_towers(USERS, ITEMS, DIM, seed=3)
    path = save_tower(items, str(tmp_path / "m"), {"title": tf.TensorSpec([None], tf.string)})
    serve = tf.saved_model.load(path).signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert list(inputs) == ["title"] and inputs["title"].dtype == tf.string
    titles = np.r_[ITEMS[::-1], ["never seen"]]
    got = serve(title=tf.constant(titles))
    assert list(got) == ["embedding"] and got["embedding"].dtype == tf.float32
    np.testing.assert_allclose(got["embedding"].numpy(), items(tf.constant(titles)).numpy())
    weights = items.layers[1].get_weights()[0]  # the NumPy reference: rows of the table
    rows = [list(ITEMS).index(t) + 1 if t in ITEMS else 0 for t in titles]
    np.testing.assert_allclose(got["embedding"].numpy(), weights[rows], atol=1e-6)


def test_dict_tower_and_the_call_choice(tmp_path):
    tower = _dict_tower()
    features = {
        "user_id": tf.TensorSpec([None], tf.string),
        "age": tf.TensorSpec([None], tf.float32),
    }
    batch = {"user_id": tf.constant(USERS[:5]), "age": tf.constant(np.arange(5.0), tf.float32)}
    expected = tower(batch).numpy()
    path = save_tower(tower, str(tmp_path / "dict"), features)
    got = tf.saved_model.load(path).signatures["serving_default"](**batch)["embedding"]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="exactly one entry"):
        save_tower(tower, str(tmp_path / "x"), features, call_with_dict=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_tower(tower, path, features)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_one_feature_called_as_a_dict(tmp_path):
    user = tf.keras.Input(shape=(), dtype=tf.string, name="user_id")
    lookup = tf.keras.layers.StringLookup(vocabulary=USERS)(user)
    tower = tf.keras.Model({"user_id": user}, tf.keras.layers.Embedding(21, DIM)(lookup))
    path = save_tower(
        tower,
        str(tmp_path / "m"),
        {"user_id": tf.TensorSpec([None], tf.string)},
        call_with_dict=True,
    )
    got = tf.saved_model.load(path).signatures["serving_default"](user_id=tf.constant(USERS))
    expected = tower({"user_id": tf.constant(USERS)}).numpy()
    np.testing.assert_allclose(got["embedding"].numpy(), expected, atol=1e-6)


def test_bad_features_and_outputs_are_named(tmp_path):
    _, items = seeded_string_towers(USERS, ITEMS, DIM)
    with pytest.raises(ValueError, match="batch dimension first"):
        save_tower(items, str(tmp_path / "a"), {"title": tf.TensorSpec([], tf.string)})
    with pytest.raises(ValueError, match="non-empty dict"):
        save_tower(items, str(tmp_path / "b"), {})
    lookup = tf.keras.Sequential([tf.keras.layers.StringLookup(vocabulary=ITEMS)])
    lookup(tf.constant(ITEMS[:2]))
    with pytest.raises(ValueError, match=r"\[batch, D\] embeddings, got \(None,\)"):
        save_tower(lookup, str(tmp_path / "c"), {"title": tf.TensorSpec([None], tf.string)})
    ids = tf.keras.Sequential([tf.keras.layers.StringLookup(vocabulary=ITEMS)])
    ids(tf.constant([ITEMS[:1]]))  # [B, 1] int64 "embeddings"
    with pytest.raises(ValueError, match="floating-point embeddings, got dtype int64"):
        save_tower(ids, str(tmp_path / "d"), {"title": tf.TensorSpec([None, 1], tf.string)})
    assert not list(tmp_path.iterdir())
