"""Where an experiment's (user, item) interactions come from: tfds, a local folder, or synthetic.

`load_interactions` never hangs on a machine without network: tfds is asked for
data already on disk first; a download is attempted only when its host answers;
otherwise (or when the download fails) the caller gets the synthetic log with a
notice saying why and naming the two ways to get MovieLens.
"""

import socket
from dataclasses import dataclass
from typing import Callable, Optional

from tfrs_negatives.data import load_movielens
from tfrs_negatives.data.movielens_release import SUPPORTED_CONFIGS, TFDS_CONFIGS
from tfrs_negatives.experiments.synthetic import SyntheticConfig, synthetic_interactions

import numpy as np
import tensorflow as tf

SYNTHETIC = "synthetic"
DOWNLOAD_HOST = ("files.grouplens.org", 443)

GET_MOVIELENS = (
    "To use MovieLens, either give this machine network access (tfds downloads it from "
    "files.grouplens.org into ~/tensorflow_datasets), or download "
    "https://files.grouplens.org/datasets/movielens/ml-100k.zip, unzip it and pass "
    "--movielens_dir path/to/ml-100k."
)


@dataclass
class Interactions:
    """A log of (user, item) interactions and where it came from.

    Attributes:
      users: `[n]` user ids (bytes).
      items: `[n]` item ids (bytes; MovieLens titles).
      source: "tfds:movielens/<config>", "local:<dir>" or "synthetic(...)".
      synthetic: True for the generated log.
      notice: Why the synthetic log stands in for MovieLens, else None.
    """

    users: np.ndarray
    items: np.ndarray
    source: str
    synthetic: bool = False
    notice: Optional[str] = None


def host_reachable(host=DOWNLOAD_HOST, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to `host` (name, port) opens within `timeout` seconds."""
    try:
        with socket.create_connection(host, timeout=timeout):
            return True
    except OSError:
        return False


def rating_pairs(dataset: tf.data.Dataset):
    """`(users, items)`: the `user_id` and `movie_title` of every example, as `[n]` arrays."""
    pairs = dataset.map(lambda x: (x["user_id"], x["movie_title"])).batch(65536)
    parts = list(pairs.as_numpy_iterator())
    if not parts:
        raise ValueError("the dataset holds no ratings")
    users, titles = (np.concatenate(p) for p in zip(*parts))
    return users, titles


def _synthetic(config: SyntheticConfig, notice: Optional[str]) -> Interactions:
    users, items = synthetic_interactions(config)
    source = (
        f"synthetic({config.num_users} users, {config.num_items} items, zipf {config.zipf}, "
        f"seed {config.seed})"
    )
    return Interactions(users, items, source, synthetic=True, notice=notice)


def load_interactions(
    dataset: Optional[str] = None,
    movielens_dir: Optional[str] = None,
    synthetic: Optional[SyntheticConfig] = None,
    reachable: Optional[Callable[[], bool]] = None,
) -> Interactions:
    """Loads the interactions of `dataset`, falling back to the synthetic log offline.

    Args:
      dataset: "movielens/<config>" (a config of `SUPPORTED_CONFIGS`) or "synthetic";
        None: the release `movielens_dir` holds, else "movielens/100k-ratings".
      movielens_dir: An unzipped GroupLens folder; used instead of tfds. A `dataset`
        of another release than its files is an error.
      synthetic: Shape of the synthetic log (when asked for or as the fallback);
        None: `SyntheticConfig()`.
      reachable: Whether tfds' download host answers; None: `host_reachable`.

    Returns:
      The `Interactions`; `notice` is set when the synthetic log replaced MovieLens.

    Raises:
      ValueError: Unknown `dataset` (or one tfds lacks, without a folder), one the
        folder's files contradict, or a local folder with no ratings.
      FileNotFoundError: `movielens_dir` does not hold MovieLens.
    """
    synthetic = SyntheticConfig() if synthetic is None else synthetic
    if dataset == SYNTHETIC:
        return _synthetic(synthetic, None)
    prefix = "movielens/"
    if dataset is None and movielens_dir is None:
        dataset = prefix + "100k-ratings"
    config = None  # with a folder and no dataset: the release of its files
    if dataset is not None:
        config = dataset[len(prefix) :] if dataset.startswith(prefix) else None
        if config not in SUPPORTED_CONFIGS:
            choices = [SYNTHETIC] + [prefix + c for c in SUPPORTED_CONFIGS]
            raise ValueError(f"--dataset: unknown {dataset!r}; choose from {choices}")
    if movielens_dir is not None:
        loaded, source = load_movielens(config, movielens_dir)
        return Interactions(*rating_pairs(loaded), source)
    if config not in TFDS_CONFIGS:
        raise ValueError(
            f"--dataset: tfds has no {dataset!r} (it has {[prefix + c for c in TFDS_CONFIGS]}); "
            "read it from an unzipped GroupLens folder with --movielens_dir."
        )

    import tensorflow_datasets as tfds  # heavy; only needed here

    try:  # already on disk (or mocked in tests): no network needed
        return Interactions(
            *rating_pairs(tfds.load(dataset, split="train", download=False)), f"tfds:{dataset}"
        )
    except Exception:  # noqa: BLE001 - not prepared: try a download below
        pass
    if not (reachable or host_reachable)():
        why = f"{dataset} is not in the tfds data folder and files.grouplens.org cannot be reached."
        return _synthetic(synthetic, f"{why} {GET_MOVIELENS} Running on synthetic data instead.")
    try:
        loaded, source = load_movielens(config)
    except RuntimeError as err:
        return _synthetic(synthetic, f"{err} Running on synthetic data instead.")
    return Interactions(*rating_pairs(loaded), source)
