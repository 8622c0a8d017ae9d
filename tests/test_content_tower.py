"""`ContentItemTower` against a NumPy reference: id + mean of word vectors + mean of labels."""

import re

import tfrs_negatives  # noqa: F401  (Keras 2 before TF)
from tfrs_negatives.towers import ContentItemTower, multi_hot

import numpy as np
import pytest
import tensorflow as tf

IDS = np.array(["Star Wars (1977)", "Return of the Jedi (1983)", "Toy Story (1995)"])
LABELS = multi_hot([[0, 1], [0], []], 3)


def _reference(tower, ids):
    """e = E_id[row] + mean_w E_word[w] + (labels / max(1, |labels|)) @ W_label, in NumPy."""
    vocab = tower.vectorize.get_vocabulary()
    words = tower.word_embedding.get_weights()[0]
    out = []
    for name in ids:
        row = list(IDS).index(name) + 1 if name in IDS else 0
        text = IDS[row - 1] if row else ""
        tokens = [
            vocab.index(w) if w in vocab else 1
            for w in text.lower().replace("(", "").replace(")", "").split()
        ]
        e = words[tokens].mean(0) if tokens else np.zeros(words.shape[1], np.float32)
        if tower.id_embedding is not None:
            e = e + tower.id_embedding.get_weights()[0][row]
        if tower.label_embedding is not None:
            labels = np.concatenate([np.zeros([1, 3], np.float32), LABELS])[row]
            e = e + labels / max(1.0, labels.sum()) @ tower.label_embedding.get_weights()[0]
        out.append(e)
    return np.stack(out)


@pytest.mark.parametrize("use_id", [True, False])
def test_matches_numpy_reference(use_id):
    tf.keras.utils.set_random_seed(0)
    tower = ContentItemTower(IDS, labels=LABELS, embedding_dim=4, use_id=use_id)
    query = ["Toy Story (1995)", "Star Wars (1977)", "unknown title", "Return of the Jedi (1983)"]
    got = tower(tf.constant(query)).numpy()
    np.testing.assert_allclose(got, _reference(tower, query), rtol=1e-5, atol=1e-6)
    # Same answer inside a tf.function, and for a [B, M] batch of ids.
    fn = tf.function(tower)
    np.testing.assert_allclose(fn(tf.constant(query)).numpy(), got, rtol=1e-6)
    grid = tower(tf.constant([query[:2], query[2:]])).numpy()
    np.testing.assert_allclose(grid.reshape(4, 4), got, rtol=1e-6)


def test_shared_words_and_labels_tie_items_together():
    # Without id embeddings, two films sharing every word and label embed identically.
    ids = np.array(["a b", "b a", "c"])
    tower = ContentItemTower(
        ids, labels=multi_hot([[0], [0], [1]], 2), embedding_dim=3, use_id=False
    )
    e = tower(tf.constant(ids)).numpy()
    np.testing.assert_allclose(e[0], e[1], rtol=1e-6)
    assert not np.allclose(e[0], e[2])


def test_without_labels_and_config_round_trip():
    tower = ContentItemTower(IDS, embedding_dim=5, max_tokens=50, name="items")
    assert tower.label_embedding is None
    assert tower(tf.constant(IDS)).shape == (3, 5)
    clone = ContentItemTower.from_config(tower.get_config())
    clone(tf.constant(IDS[:1]))
    clone.set_weights(tower.get_weights())
    np.testing.assert_allclose(clone(tf.constant(IDS)).numpy(), tower(tf.constant(IDS)).numpy())
    labelled = ContentItemTower(IDS, labels=LABELS, embedding_dim=2)
    again = ContentItemTower.from_config(labelled.get_config())
    np.testing.assert_array_equal(again.labels, LABELS)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ContentItemTower(np.array([])),
         "`ids` must be a non-empty rank-1 array, got shape (0,)."),
        (lambda: ContentItemTower(np.array(["a", "a"])), "`ids` must be distinct."),
        (lambda: ContentItemTower(IDS, texts=np.array(["x"])),
         "`texts` must have shape (3,) (one per id), got (1,)."),
        (lambda: ContentItemTower(IDS, labels=np.ones([2, 3])),
         "`labels` must be [N=3, L] multi-hot, got shape (2, 3)."),
        (lambda: ContentItemTower(IDS, embedding_dim=0),
         "`embedding_dim` must be a positive integer, got 0."),
        (lambda: multi_hot([[0, 3]], 3), "label ids must be in [0, 3), row 0 has [0, 3]."),
    ],
    ids=["empty ids", "repeated ids", "texts", "labels", "embedding_dim", "label id"],
)  # fmt: skip
def test_bad_input_names_the_argument(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()
