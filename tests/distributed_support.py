"""The seeded model, log and task of the `tf.distribute` tests, shared by the test process
and the worker processes of `tests/test_multi_worker.py` (which do not load conftest)."""

import tfrs_negatives as tfn

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
from tests_support import NUM_ITEMS, NUM_USERS

DIM = 8


class WeightedTwoTower(tfrs.Model):
    """ID towers with seeded weights; the task gets sample weights, ids and the tower."""

    def __init__(self, task, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.query_tower = tf.keras.layers.Embedding(
            NUM_USERS, DIM, embeddings_initializer=_constant(rng, NUM_USERS)
        )
        self.item_tower = tf.keras.layers.Embedding(
            NUM_ITEMS, DIM, embeddings_initializer=_constant(rng, NUM_ITEMS)
        )
        self.task = task

    def compute_loss(self, features, training=False):
        return self.task(
            self.query_tower(features["user"]),
            self.item_tower(features["item"]),
            sample_weight=features["weight"],
            candidate_ids=features["item"],
            candidate_tower=self.item_tower,
            training=training,
        )


def _constant(rng, rows):
    return tf.keras.initializers.Constant(rng.normal(scale=0.3, size=(rows, DIM)))


def weighted_log(n=250, batch=64, seed=0):
    """Zipf items (repeats: accidental hits), weights; the last batch is uneven."""
    rng = np.random.default_rng(seed)
    items = np.minimum(rng.zipf(1.5, n) - 1, NUM_ITEMS - 1).astype(np.int64)
    return tf.data.Dataset.from_tensor_slices(
        {
            "user": rng.integers(0, NUM_USERS, n),
            "item": items,
            "weight": rng.uniform(0.5, 1.5, n).astype(np.float32),
        }
    ).batch(batch)


def logq_task(**kwargs):
    """In-batch negatives, the streaming estimator, accidental hits removed, temperature."""
    return tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=64),
        remove_accidental_hits=True,
        temperature=0.5,
        **kwargs,
    )


def trained(strategy, make_task, epochs=2, dataset=None):
    """`(model, Keras' loss per epoch)`: SGD on `dataset` (default `weighted_log()`)."""
    with strategy.scope():
        model = WeightedTwoTower(make_task())
        model.compile(optimizer=tf.keras.optimizers.SGD(0.02))
    dataset = weighted_log() if dataset is None else dataset
    history = model.fit(dataset, epochs=epochs, verbose=0, shuffle=False)
    return model, history.history["loss"]


def trained_state(model):
    """The towers' weights and the estimator's state, as NumPy arrays."""
    state = {"query": model.query_tower.embeddings, "item": model.item_tower.embeddings}
    frequency = model.task.frequency
    if frequency is not None:
        state.update(gap=frequency.gap, occurrences=frequency.occurrences)
    return {k: v.numpy() for k, v in state.items()}


def assert_same_state(got, want, rtol=1e-5):
    """Every array of `want` equals `got`'s to `rtol` (NumPy's `assert_allclose`)."""
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=1e-6, err_msg=key)
