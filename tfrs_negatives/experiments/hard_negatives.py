"""The hard-negatives protocol on MovieLens: named runs, their tasks, flags and content towers.

`examples/movielens_hard_negatives.py` trains these runs side by side (every run with
`CorrectedRetrieval`, a streaming log-Q estimator and accidental hits removed):

* `logq`: in-batch negatives, log-Q corrected (the baseline, no hard negatives);
* `mixed`: in-batch plus uniform titles shared by the batch;
* `mixed+hard_window`: `mixed` plus mined negatives from a rank window of the
  positive title's neighbours (item side);
* `mixed+hard_query`: `mixed` plus mined negatives from a rank window of the titles
  the model scores highest for the user (query side, EBR-style);
* `logq+hard_window`: in-batch plus the item-side mined negatives;
* `hardest_only`: in-batch plus mined negatives from the top ranks (expected to hurt);
* `full_softmax`: every title every step (`FullCatalogue`), the reference.

`mined_runs` refreshes and reports the mined tables of these runs.
"""

import argparse
import dataclasses
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from tfrs_negatives import callbacks, negatives
from tfrs_negatives.data import load_movielens
from tfrs_negatives.estimators import StreamingFrequencyEstimator
from tfrs_negatives.experiments.model import TwoTowerModel
from tfrs_negatives.experiments.splits import Split
from tfrs_negatives.experiments.strategies import MINERS, Mining, make_miner, parse_window
from tfrs_negatives.mining import HardNegativeTable, KnownPositives
from tfrs_negatives.tasks import CorrectedRetrieval
from tfrs_negatives.towers import ContentItemTower

import numpy as np
import tensorflow as tf

STRATEGIES = (
    "logq",
    "mixed",
    "mixed+hard_window",
    "mixed+hard_query",
    "logq+hard_window",
    "hardest_only",
    "full_softmax",
)
ITEM_TOWERS = ("id", "content", "content_only")
NUM_GENRES = 21  # the genre labels of tfds' movielens (`movie_genres`)


class HardNegativesModel(TwoTowerModel):
    """The tutorial's two towers; the task also gets the item tower (to embed sampled and
    mined titles) and the user ids (query-side anchors, keys of the known positives).

    With `item_tower` given (e.g. a `ContentItemTower`), it replaces the tutorial's
    title-id tower.
    """

    def __init__(self, users, titles, task, embedding_dim=32, item_tower=None) -> None:
        super().__init__(users, titles, task, embedding_dim)
        if item_tower is not None:
            self.item_tower = item_tower

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        titles = features["movie_title"]
        return self.task(
            self.query_tower(features["user_id"]),
            self.item_tower(titles),
            candidate_ids=titles,
            candidate_tower=self.item_tower,
            query_ids=features["user_id"],
            training=training,
            compute_metrics=False,
        )


class TaskData(NamedTuple):
    """What the protocol's tasks are built over.

    Attributes:
      users: `[U]` every user id (the query-side table's anchors).
      titles: `[N]` the catalogue (every title).
      train_users, train_titles: `[n]` the training interactions (query-side mining
        drops each user's positives from its ranking).
      known: The training (user, title) pairs, skipped when drawing mined negatives.
    """

    users: np.ndarray
    titles: np.ndarray
    train_users: np.ndarray
    train_titles: np.ndarray
    known: KnownPositives

    @classmethod
    def from_split(cls, split: Split) -> "TaskData":
        """The split's users, catalogue and training interactions (also as known positives)."""
        known = KnownPositives(split.train_users, split.train_items)
        return cls(split.users, split.items, split.train_users, split.train_items, known)


@dataclasses.dataclass(frozen=True)
class HardOptions:
    """The protocol's settings of the sampled and mined sources.

    Attributes:
      miner_kind: `"brute"` (exact) or `"scann"`.
      num_negatives: Uniform draws per step.
      hard_count: Mined negatives per example.
      hard_window: Rank window `[lo, hi)` of the `*+hard_*` runs.
      hardest_window: Rank window of `hardest_only`.
      hard_weight: Weight of each mined term in the softmax denominator.
      hard_sample: `"random"` within the window or its `"top"` entries.
      hard_margin: Optional NV-Retriever margin (drop mined titles scoring above
        `(1 - margin)` times the positive).
      seed: Seed of the sampled sources' generators (the mined one's is `seed + 1`).
      cross_replica_negatives: `CorrectedRetrieval`'s argument of that name (None:
        global in-batch negatives under a strategy; False: each replica's slice).
    """

    miner_kind: str = "brute"
    num_negatives: int = 1024
    hard_count: int = 8
    hard_window: Tuple[int, int] = (10, 100)
    hardest_window: Tuple[int, int] = (0, 10)
    hard_weight: float = 1.0
    hard_sample: str = "random"
    hard_margin: Optional[float] = None
    seed: int = 0
    cross_replica_negatives: Optional[bool] = None

    @classmethod
    def from_flags(
        cls,
        args: argparse.Namespace,
        hard_window: Tuple[int, int],
        hardest_window: Tuple[int, int],
    ) -> "HardOptions":
        """The options of `add_flags`' flags, with the windows `checked_windows` parsed."""
        return cls(
            miner_kind=args.miner,
            num_negatives=args.num_negatives,
            hard_count=args.hard_count,
            hard_window=hard_window,
            hardest_window=hardest_window,
            hard_weight=args.hard_weight,
            hard_sample=args.hard_sample,
            hard_margin=args.hard_margin,
            cross_replica_negatives=False if args.per_replica_negatives else None,
        )


def make_task(
    strategy: str, data: TaskData, options: Optional[HardOptions] = None
) -> Tuple[CorrectedRetrieval, Optional[Mining]]:
    """The retrieval task of a strategy name and its mined source (None without one).

    Args:
      strategy: One of `STRATEGIES`.
      data: The users, catalogue and training interactions (`TaskData`).
      options: The sources' settings (default `HardOptions()`).

    Raises:
      ValueError: an unknown strategy or miner.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    options = HardOptions() if options is None else options
    if strategy == "full_softmax":  # the reference: every title, every step
        task = CorrectedRetrieval(
            frequency=StreamingFrequencyEstimator(),
            negatives=[negatives.FullCatalogue(data.titles)],
            remove_accidental_hits=True,
            cross_replica_negatives=options.cross_replica_negatives,
        )
        return task, None
    sources: List[Any] = [negatives.InBatch()]
    if strategy.startswith("mixed"):
        sources.append(
            negatives.Uniform(data.titles, count=options.num_negatives, seed=options.seed)
        )
    mining = None
    if strategy not in ("logq", "mixed"):
        mining = _mining(strategy, data, options)
        sources.append(mining.source)
    task = CorrectedRetrieval(
        frequency=StreamingFrequencyEstimator(),
        negatives=sources,
        remove_accidental_hits=True,
        # One correction for every mined run (in-batch only or mixed): distinct
        # candidates counted once, corrected by their inclusion probability.
        duplicates="mask" if mining is not None else None,
        cross_replica_negatives=options.cross_replica_negatives,
    )
    return task, mining


def _mining(strategy: str, data: TaskData, options: HardOptions) -> Mining:
    """The mined source of a `*hard*` strategy, its table and miner (query-side: `excluded`)."""
    window = options.hardest_window if strategy == "hardest_only" else options.hard_window
    miner = make_miner(options.miner_kind, data.titles, window)
    side = "query" if strategy == "mixed+hard_query" else "item"
    table = HardNegativeTable(data.titles if side == "item" else data.users, miner.window)
    source = negatives.Mined(
        table,
        data.titles,
        count=options.hard_count,
        side=side,
        sample=options.hard_sample,
        known_positives=data.known,
        margin=options.hard_margin,
        weight=options.hard_weight,
        seed=options.seed + 1,
    )
    mining = Mining(source, table, miner)
    if side == "query":
        mining.excluded = callbacks.positives_by_anchor(
            data.train_users, data.train_titles, table, miner
        )
    return mining


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The protocol's flags: miner, counts, windows, curriculum, refresh and item tower."""
    parser.add_argument("--miner", choices=MINERS, default="brute")
    parser.add_argument("--num_negatives", type=int, default=1024, help="uniform draws per step")
    parser.add_argument("--hard_count", type=int, default=8, help="mined negatives per example")
    parser.add_argument("--hard_window", default="10,100", help="ranks lo,hi of the hard runs")
    parser.add_argument("--hardest_window", default="0,10", help="ranks lo,hi of hardest_only")
    parser.add_argument("--hard_warmup_epochs", type=float, default=1.0)
    parser.add_argument("--hard_ramp_epochs", type=float, default=1.0)
    parser.add_argument("--hard_weight", type=float, default=1.0, help="weight of a mined term")
    parser.add_argument("--hard_sample", choices=negatives.mined.SAMPLING, default="random")
    parser.add_argument("--hard_margin", type=float, default=None, help="NV-Retriever margin")
    parser.add_argument(
        "--refresh_every_steps", type=int, default=None, help="re-mine every N steps (not epochs)"
    )
    parser.add_argument(
        "--item_tower",
        choices=ITEM_TOWERS,
        default="id",
        help="id: the tutorial's title embedding; content: title id + title words + genres; "
        "content_only: title words + genres (no per-title parameters)",
    )


def checked_windows(
    parser: argparse.ArgumentParser, args: argparse.Namespace, strategies: Sequence[str]
) -> Tuple[Tuple[int, int], Tuple[int, int], Dict[str, Tuple[int, int]]]:
    """Checks the protocol's flags; returns the two windows and those of the chosen runs.

    Every check that fails is a parser error naming the flag. Only the windows of the
    chosen runs must hold `--hard_count` entries; `check_windows_fit` checks them
    against the catalogue once it is loaded.

    Returns:
      `(hard_window, hardest_window, {flag: (lo, hi)} of the chosen runs' windows)`.
    """
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 1 or args.num_negatives < 1 or args.hard_count < 1:
        parser.error("--batch_size, --num_negatives and --hard_count must be >= 1")
    if not args.hard_weight > 0:
        parser.error(f"--hard_weight must be > 0, got {args.hard_weight}")
    if args.refresh_every_steps is not None and args.refresh_every_steps < 1:
        parser.error(f"--refresh_every_steps must be >= 1, got {args.refresh_every_steps}")
    if args.hard_warmup_epochs < 0 or args.hard_ramp_epochs < 0:
        parser.error("--hard_warmup_epochs and --hard_ramp_epochs must be >= 0")
    windows = {
        flag: _window(getattr(args, flag[2:]), flag, parser)
        for flag in ("--hard_window", "--hardest_window")
    }
    chosen = {}
    if any("+hard_" in s for s in strategies):
        chosen["--hard_window"] = windows["--hard_window"]
    if "hardest_only" in strategies:
        chosen["--hardest_window"] = windows["--hardest_window"]
    for flag, (lo, hi) in chosen.items():
        if args.hard_count > hi - lo:
            parser.error(f"--hard_count {args.hard_count} exceeds the {flag} of {hi - lo} ranks")
    return windows["--hard_window"], windows["--hardest_window"], chosen


def check_windows_fit(
    parser: argparse.ArgumentParser, windows: Dict[str, Tuple[int, int]], num_titles: int
) -> None:
    """A parser error when a chosen window reaches beyond the catalogue."""
    for flag, (_, hi) in windows.items():
        if hi > num_titles:
            parser.error(f"{flag}: rank {hi} is beyond the catalogue of {num_titles} titles")


def _window(text: str, flag: str, parser: argparse.ArgumentParser) -> Tuple[int, int]:
    try:
        return parse_window(text, flag)
    except ValueError as err:
        parser.error(str(err))


def title_genres(args: argparse.Namespace, titles: np.ndarray) -> np.ndarray:
    """`[N, G]` multi-hot genres of each title (G = the tfds genre labels), from the ratings.

    Raises:
      ValueError: the ratings have no `movie_genres` feature.
    """
    dataset, _ = load_movielens(args.config, args.movielens_dir)
    if "movie_genres" not in dataset.element_spec:
        raise ValueError(
            "--item_tower content needs the ratings' `movie_genres` feature; the dataset has "
            f"only {sorted(dataset.element_spec)}"
        )
    pairs = dataset.map(
        lambda x: (
            x["movie_title"],
            tf.minimum(tf.reduce_sum(tf.one_hot(x["movie_genres"], NUM_GENRES), axis=0), 1.0),
        )
    )
    index = {t: i for i, t in enumerate(titles)}
    genres = np.zeros([len(titles), NUM_GENRES], np.float32)
    for names, rows in pairs.batch(65536).as_numpy_iterator():
        for name, row in zip(names, rows):
            genres[index[name]] = row
    return genres


def item_tower(
    kind: str, titles: np.ndarray, genres: Optional[np.ndarray], embedding_dim: int
) -> Optional[ContentItemTower]:
    """The `--item_tower` of a run: None for `id` (the tutorial's), else a `ContentItemTower`."""
    if kind == "id":
        return None
    return ContentItemTower(
        titles, labels=genres, embedding_dim=embedding_dim, use_id=kind == "content"
    )
