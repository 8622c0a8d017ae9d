"""A synthetic interaction log with Zipf popularity and latent preferences.

The stand-in for MovieLens when no data can be had (and a controllable catalogue
for experiments). Each item has a popularity `pop_j ∝ 1 / rank_j^zipf` (ranks in a
random order) and a latent vector `v_j`; each user a latent vector `u_u` and an
activity (a log-normal number of interactions). A user's items are drawn without
replacement with probability proportional to `pop_j * exp(affinity * u_u . v_j)`
(Gumbel top-k), so interactions mix what is popular with what the user likes —
the two signals a retrieval model has to separate, and the reason uncorrected
in-batch softmax under-scores popular items (it treats popularity as the
sampling distribution and divides it out of the scores).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of a synthetic log.

    Attributes:
      num_users: Users (>= 2).
      num_items: Items in the catalogue (>= 2).
      interactions_per_user: Mean interactions of a user (log-normal, at least 1,
        at most `num_items`).
      zipf: Exponent of the item popularity (0: uniform).
      affinity: Weight of the latent preference against popularity (0: popularity only).
      latent_dim: Dimension of the latent vectors.
      seed: Seed of everything random.
    """

    num_users: int = 1000
    num_items: int = 1700
    interactions_per_user: float = 100.0
    zipf: float = 1.0
    affinity: float = 2.0
    latent_dim: int = 8
    seed: int = 0

    def check(self) -> None:
        """Raises ValueError naming the first field out of range."""
        checks = (
            ("num_users", self.num_users >= 2, ">= 2"),
            ("num_items", self.num_items >= 2, ">= 2"),
            ("interactions_per_user", self.interactions_per_user >= 1, ">= 1"),
            ("zipf", self.zipf >= 0, ">= 0"),
            ("affinity", self.affinity >= 0, ">= 0"),
            ("latent_dim", self.latent_dim >= 1, ">= 1"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(
                    f"synthetic `{name}` must be {expected}, got {getattr(self, name)!r}."
                )


def item_popularity(num_items: int, zipf: float, rng: np.random.Generator) -> np.ndarray:
    """`[num_items]` Zipf popularity (sums to 1) with ranks assigned in a random order."""
    ranks = rng.permutation(num_items) + 1
    weights = 1.0 / ranks.astype(np.float64) ** zipf
    return weights / weights.sum()


def synthetic_interactions(config: SyntheticConfig = SyntheticConfig()):
    """Draws a synthetic log.

    Args:
      config: Sizes and shape.

    Returns:
      `(user_ids, item_ids)`: two `[n]` arrays of byte strings (`b"user_12"`,
      `b"item_345"`), one row per interaction, each (user, item) pair at most once,
      in a shuffled order.
    """
    config.check()
    rng = np.random.default_rng(config.seed)
    popularity = item_popularity(config.num_items, config.zipf, rng)
    users = rng.normal(size=(config.num_users, config.latent_dim)) / np.sqrt(config.latent_dim)
    items = rng.normal(size=(config.num_items, config.latent_dim))
    sigma = 0.5
    mean = np.log(config.interactions_per_user) - sigma**2 / 2
    counts = np.clip(
        np.round(rng.lognormal(mean, sigma, config.num_users)), 1, config.num_items
    ).astype(np.int64)
    user_rows, item_rows = [], []
    log_popularity = np.log(popularity)
    for start in range(0, config.num_users, 256):
        block = slice(start, min(start + 256, config.num_users))
        logits = log_popularity + config.affinity * users[block] @ items.T
        keys = logits + rng.gumbel(size=logits.shape)  # Gumbel top-k: sampling w/o replacement
        order = np.argsort(-keys, axis=1)
        for offset, row in enumerate(order):
            user = start + offset
            chosen = row[: counts[user]]
            user_rows.append(np.full(len(chosen), user))
            item_rows.append(chosen)
    user_index = np.concatenate(user_rows)
    item_index = np.concatenate(item_rows)
    shuffle = rng.permutation(len(user_index))
    user_ids = np.char.add(b"user_", user_index[shuffle].astype("S"))
    item_ids = np.char.add(b"item_", item_index[shuffle].astype("S"))
    return user_ids, item_ids
