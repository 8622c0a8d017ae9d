"""The train/test protocol of the TFRS retrieval tutorial, on arrays of interactions.

One shuffle with a seed, the first 80% train, the rest test; every item of either
split is in the catalogue (recall is computed over all of it); head items are the
most popular ones holding half the training interactions.
"""

from dataclasses import dataclass

from tfrs_negatives.evaluation import head_items

import numpy as np
import tensorflow as tf


@dataclass
class Split:
    """A train/test split with its vocabularies.

    Attributes:
      train_users, train_items: `[n_train]` training interactions.
      test_users, test_items: `[n_test]` test interactions.
      users: `[U]` sorted distinct user ids of both splits.
      items: `[N]` sorted distinct item ids of both splits (the catalogue).
      train_index, test_index: Positions of each interaction's item in `items`.
      head: `[N]` True for head items (see `tfrs_negatives.evaluation.head_items`).
    """

    train_users: np.ndarray
    train_items: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    users: np.ndarray
    items: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray
    head: np.ndarray

    @property
    def train_counts(self) -> np.ndarray:
        """`[N]` training interactions of each catalogue item."""
        return np.bincount(self.train_index, minlength=len(self.items))


def shuffled_order(size: int, seed: int) -> np.ndarray:
    """The order `tf.data.Dataset.shuffle(size, seed)` visits `size` rows in (the tutorial's)."""
    tf.random.set_seed(seed)
    order = (
        tf.data.Dataset.range(size)
        .shuffle(size, seed=seed, reshuffle_each_iteration=False)
        .batch(65536)
    )
    return np.concatenate(list(order.as_numpy_iterator())).astype(np.int64)


def split_interactions(
    users: np.ndarray, items: np.ndarray, seed: int = 42, train_share: float = 0.8
) -> Split:
    """Splits interactions as the TFRS tutorial does.

    Args:
      users, items: `[n]` interactions.
      seed: Seed of the shuffle.
      train_share: Share of interactions in the training split, in `(0, 1)`.

    Returns:
      The `Split`.

    Raises:
      ValueError: Lengths differ, `train_share` out of range, or a split is empty.
    """
    users, items = np.asarray(users), np.asarray(items)
    if users.shape != items.shape or users.ndim != 1:
        raise ValueError(
            f"users and items must be 1-D of one length, got {users.shape} and {items.shape}."
        )
    if not 0.0 < train_share < 1.0:
        raise ValueError(f"`train_share` must be in (0, 1), got {train_share!r}.")
    order = shuffled_order(len(users), seed)
    n_train = int(train_share * len(users))
    if n_train == 0 or n_train == len(users):
        raise ValueError(
            f"{len(users)} interactions leave an empty train or test split "
            f"(train share {train_share})."
        )
    train, test = order[:n_train], order[n_train:]
    vocabulary_users = np.unique(users)
    catalogue = np.unique(items)
    train_index = np.searchsorted(catalogue, items[train])
    test_index = np.searchsorted(catalogue, items[test])
    return Split(
        train_users=users[train],
        train_items=items[train],
        test_users=users[test],
        test_items=items[test],
        users=vocabulary_users,
        items=catalogue,
        train_index=train_index,
        test_index=test_index,
        head=head_items(train_index, len(catalogue)),
    )


def training_batches(
    users: np.ndarray, items: np.ndarray, batch_size: int, seed: int
) -> tf.data.Dataset:
    """The tutorial's training pipeline: shuffled once per epoch, batched, cached.

    Args:
      users, items: `[n]` training interactions.
      batch_size: Examples per batch.
      seed: Seed of the shuffle.

    Returns:
      Batches of `{"user_id": [B], "movie_title": [B]}` (the MovieLens tfds feature
      names, also used for synthetic items).
    """
    features = {"user_id": users, "movie_title": items}
    return (
        tf.data.Dataset.from_tensor_slices(features)
        .shuffle(len(users), seed=seed)
        .batch(batch_size)
        .cache()
    )
