"""Small two-tower model and data shared by the training tests."""

from tfrs_negatives.negatives import Uniform

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

NUM_USERS, NUM_ITEMS = 30, 40


class TwoTower(tfrs.Model):
    """ID towers; the task is called with ids, the candidate tower and `training`."""

    def __init__(self, task, dim=8):
        super().__init__()
        self.query_tower = tf.keras.layers.Embedding(NUM_USERS, dim)
        self.item_tower = tf.keras.layers.Embedding(NUM_ITEMS, dim)
        self.task = task

    def compute_loss(self, features, training=False):
        return self.task(
            self.query_tower(features["user"]),
            self.item_tower(features["item"]),
            candidate_ids=features["item"],
            candidate_tower=self.item_tower,
            training=training,
        )


def seeded_string_towers(users, items, dim, seed=0):
    """`StringLookup` + `Embedding` query and item towers, built, with seeded weights."""
    rng = np.random.default_rng(seed)
    towers = []
    for vocabulary in (users, items):
        tower = tf.keras.Sequential(
            [
                tf.keras.layers.StringLookup(vocabulary=vocabulary),
                tf.keras.layers.Embedding(len(vocabulary) + 1, dim),
            ]
        )
        tower(tf.constant(vocabulary[:2]))
        towers.append(tower)
    for tower, vocabulary in zip(towers, (users, items)):
        size = len(vocabulary) + 1
        tower.layers[1].set_weights([rng.normal(size=(size, dim)).astype(np.float32)])
    return tuple(towers)


def interactions(seed=0, n=256, batch=64):
    """Zipf-popular items, uniform users, batched."""
    rng = np.random.default_rng(seed)
    items = np.minimum(rng.zipf(1.5, n) - 1, NUM_ITEMS - 1)
    return tf.data.Dataset.from_tensor_slices(
        {"user": rng.integers(0, NUM_USERS, n), "item": items.astype(np.int64)}
    ).batch(batch)


def load_script(path, name):
    """Imports a script (an example or a benchmark) as a module, by path."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FixedDraws(Uniform):
    """A uniform source whose draws are given (to compare against NumPy)."""

    def __init__(self, catalogue, indices, **kwargs):
        super().__init__(catalogue, len(indices), **kwargs)
        self._indices = tf.constant(indices, tf.int64)

    def sample(self):
        return self.catalogue.gather(self._indices)


#: `tfrs-negatives compare` flags of a tiny synthetic run (seconds): logq and mixed.
TINY_SYNTHETIC = [
    "--dataset", "synthetic", "--synthetic_users", "150", "--synthetic_items", "200",
    "--synthetic_interactions_per_user", "12", "--batch_size", "200", "--num_negatives", "32",
    "--epochs", "2", "--ks", "10,50", "--strategies", "logq,mixed", "--quiet",
]  # fmt: skip
