"""TFRS's MovieLens retrieval model trained with and without mined hard negatives, side by side.

The protocol of `examples/movielens_logq.py` (the TFRS tutorial's: ratings of
`movielens/100k-ratings` as (user_id, movie_title) pairs, 80/20 random split with
seed 42, `StringLookup` + `Embedding(32)` towers, Adagrad(0.1), batch 8192, 3
epochs), every run from the same initial weights, with `CorrectedRetrieval`
(streaming log-Q estimator; accidental hits removed) and these negatives:

* `logq`: in-batch negatives, log-Q corrected (the baseline, no hard negatives);
* `mixed`: in-batch plus `--num_negatives` (1024) titles drawn uniformly from the
  catalogue, shared by the batch, corrected with the mixture's probability;
* `mixed+hard_window`: `mixed` plus `--hard_count` (8) hard negatives per example,
  drawn from ranks `--hard_window` ([10, 100)) of the neighbours of the example's
  positive title (item-side mining with the model's own item tower);
* `mixed+hard_query`: `mixed` plus 8 per example from ranks [10, 100) of the
  titles the model scores highest for the example's user (query-side, EBR-style:
  the table is over user ids, mined around `query_tower(user)`, dropping the user's
  training positives);
* `logq+hard_window`: in-batch plus the 8 mined from ranks [10, 100), no uniform
  negatives;
* `hardest_only`: in-batch plus 8 per example from ranks `--hardest_window`
  ([0, 10)) item-side, no uniform negatives: the nearest neighbours are often
  unlabelled positives, so this is expected to hurt;
* `full_softmax`: every title every step (`FullCatalogue`), the reference the
  sampled runs approximate, under the same towers.

`--item_tower content` replaces the title-id tower with a `ContentItemTower`:
title id embedding + mean of the title's word embeddings (`TextVectorization`,
the year included) + mean of its genres' embeddings. Words and genres are shared
across titles, so a title's nearest titles are films alike in content, the
neighbours hard negatives are meant to push apart.

Mined negatives skip the query's training positives (`KnownPositives`) and carry
no log-Q term (each counts as one certain term). Every run with a mined source
counts duplicates once (`duplicates="mask"`, the default of the mixed runs), so the
in-batch-only mined runs and the mixed ones share one correction. The
table is re-mined from the model being trained at the start of every epoch
(`RefreshHardNegatives`, exact `BruteForceMiner` or `--miner scann`), and a
curriculum (`NegativeCurriculum`, in steps) keeps the mined count at 0 for
`--hard_warmup_epochs` (1), then ramps it linearly to `--hard_count` over
`--hard_ramp_epochs` (1): the first table is mined from random embeddings.
`--refresh_every_steps` re-mines every N steps instead; `--hard_weight` (1) is the
weight of each mined term in the softmax denominator, `--hard_sample` draws at
random within the window (default) or its `top` entries, `--hard_margin` drops
mined titles scoring above `(1 - margin)` times the positive (NV-Retriever).

Printed per run: test recall@10/50/100 over every title, overall and split into
head titles (the most popular ones holding half the training interactions) and
tail titles; then, for the mined runs, the refresh timings, the fallbacks (examples
whose anchor had no admissible mined entry and got uniform titles instead)
and the share of the final table's mined negatives of training examples that are
test positives of the example's user (a lower bound of the false-negative rate).

Measured on MovieLens 100K (`--movielens_dir ml-100k`, exact miner, 3 epochs, split
seeds 42 / 1 / 2; mean of the three, R@100 overall / head / tail):

  run                  batch 8192              batch 256
  logq                 0.395 / 0.632 / 0.159   0.392 / 0.609 / 0.177
  mixed                0.392 / 0.638 / 0.149   0.395 / 0.620 / 0.173
  mixed+hard_window    0.392 / 0.637 / 0.150   0.395 / 0.619 / 0.174
  mixed+hard_query     0.392 / 0.638 / 0.149   0.395 / 0.620 / 0.172
  logq+hard_window     0.393 / 0.636 / 0.152   0.392 / 0.608 / 0.177
  hardest_only         0.393 / 0.636 / 0.152   0.392 / 0.608 / 0.177

Hard negatives made no measurable gain at either batch size. Paired against the
same run without them (`mixed`; for the in-batch-only runs the same task with the
mined count held at 0, `--hard_warmup_epochs 99`), R@100 moves by at most 0.0011
in any split, while head R@100 drops about 0.002 and tail R@100 rises about 0.001
(the same sign in all three splits); `hardest_only` also lowers R@10 by 0.0025 at
batch 256 (-0.0021 to -0.0028). More mined negatives (one split, batch 256) only
enlarge that head-for-tail trade and lower R@100: 90 per example, head -0.020,
tail +0.010, R@100 -0.005; batch 64 (2 epochs) looks the same. What does move at
batch 256 is the uniform mix (`mixed` - `logq`: R@100 +0.0035, +0.0027 to +0.0046).
About 8% of the item-side window's and 19% of the query-side window's mined
negatives are test positives of the example's user. With ID towers, a title's
nearest titles are no harder than the 1,024 uniform ones.

Content towers (`benchmarks/hard_negatives_movielens.py`, split seeds 42 / 1 / 2;
mean R@100 overall / head / tail, then the paired R@100 difference against the
same towers without mining, mean [min, max] over the splits):

  batch 8192, --item_tower content (tutorial protocol otherwise)
    full_softmax        0.402 / 0.617 / 0.189
    mixed               0.402 / 0.616 / 0.189   (control)
    mixed+hard_window   0.402 / 0.615 / 0.190   -0.0003 [-0.0004, -0.0001]
    mixed+hard_query    0.401 / 0.615 / 0.189   -0.0010 [-0.0011, -0.0008]
    hardest_only        0.402 / 0.615 / 0.191   +0.0002 [-0.0012, +0.0009]
  batch 8192, --item_tower content_only: mixed 0.399 / 0.642 / 0.158 (control);
    mixed+hard_window +0.0001 [-0.0000, +0.0002]; hardest_only +0.0001
  batch 128, 16 mined from [20, 200), warm-up 0.5 + ramp 0.5 epochs, re-mined
  every 200 steps; control `logq` (in-batch only)
    content       logq 0.395 / 0.600 / 0.192; logq+hard_window +0.0003
                  [-0.0002, +0.0008] (tail +0.0021 [+0.0012, +0.0037], head -0.0016);
                  hardest_only [0, 16) -0.0005 (head -0.0046, tail +0.0035);
                  mixed 0.399 (+0.0044 [+0.0027, +0.0062]: uniform negatives help here)
    content_only  logq 0.405 / 0.636 / 0.176; full_softmax +0.0002; logq+hard_window
                  -0.0006 [-0.0015, +0.0002]
    id            logq 0.391 / 0.609 / 0.176; logq+hard_window -0.0004; hardest_only
                  -0.0008 (head -0.0062, tail +0.0045)

The content towers lift every run above the ID towers' full softmax (0.393 / tail
0.149 in DESIGN), but mined negatives add nothing to that: on average within 0.001
of R@100 of the same towers without mining in every setting (at most 0.0015 in any
split; also `mixed+hard_window` at batch 128, -0.0002, and 32 per example, window
[50, 300), weight 0.25 or the window's top entries: -0.0003 to +0.0005), while
at batch 128 they steadily move about 0.002-0.003 of recall from head to tail titles
(hardest-only about twice that, and it lowers R@10 by about 0.002). On a
1,664-title catalogue in-batch plus uniform negatives already approximate the full
softmax (on average within 0.001 of them), so mined negatives can only re-weight terms
the loss already has.

Usage:
  python examples/movielens_hard_negatives.py                       # tfds (downloads)
  python examples/movielens_hard_negatives.py --movielens_dir ../shared/data/ml-100k
  python examples/movielens_hard_negatives.py --movielens_dir ../shared/data/ml-100k \\
      --batch_size 256                   # where in-batch negatives are easier
  python examples/movielens_hard_negatives.py --movielens_dir ../shared/data/ml-100k \
      --item_tower content --strategies full_softmax,mixed,mixed+hard_window
"""

import argparse
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import tfrs_negatives as tfn  # first: selects Keras 2 for TFRS
from tfrs_negatives.data import load_movielens
from tfrs_negatives.evaluation import recall_at_k
from tfrs_negatives.experiments import warmup_schedule
from tfrs_negatives.experiments.strategies import parse_window
from tfrs_negatives.mining import (
    BruteForceMiner,
    HardNegativeTable,
    KnownPositives,
    ScaNNMiner,
    false_negative_rate_by_rank,
)
from tfrs_negatives.towers import ContentItemTower

import numpy as np
import tensorflow as tf

# The protocol's data split and towers come from the log-Q example next to this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from movielens_logq import (  # noqa: E402
    MovielensModel,
    add_common_flags,
    build,
    chosen_strategies,
    export_and_query,
    main,
    prepare_split,
    print_table,
    set_tower_weights,
    tower_weights,
    training_batches,
    write_json,
)

STRATEGIES = (
    "logq",
    "mixed",
    "mixed+hard_window",
    "mixed+hard_query",
    "logq+hard_window",
    "hardest_only",
    "full_softmax",
)
MINERS = ("brute", "scann")
ITEM_TOWERS = ("id", "content", "content_only")
NUM_GENRES = 21  # the genre labels of tfds' movielens (`movie_genres`)


class HardNegativesModel(MovielensModel):
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


class Mining:
    """The mined source of a run and what refreshes it (None for runs without one)."""

    def __init__(self, source: tfn.negatives.Mined, table: HardNegativeTable, miner) -> None:
        self.source, self.table, self.miner = source, table, miner
        self.excluded: Optional[List[np.ndarray]] = None  # query-side: positives per user


def make_miner(kind: str, titles: np.ndarray, window: Tuple[int, int]):
    """An exact or ScaNN miner over the titles, keeping ranks `[window[0], window[1])`."""
    if kind == "brute":
        return BruteForceMiner(titles, min_rank=window[0], max_rank=window[1])
    if kind == "scann":
        return ScaNNMiner(titles, min_rank=window[0], max_rank=window[1])
    raise ValueError(f"unknown miner {kind!r}; expected one of {MINERS}")


def make_task(
    strategy: str,
    users: np.ndarray,
    titles: np.ndarray,
    known: KnownPositives,
    train_users: np.ndarray,
    train_titles: np.ndarray,
    miner_kind: str = "brute",
    num_negatives: int = 1024,
    hard_count: int = 8,
    hard_window: Tuple[int, int] = (10, 100),
    hardest_window: Tuple[int, int] = (0, 10),
    hard_weight: float = 1.0,
    hard_sample: str = "random",
    hard_margin: Optional[float] = None,
    seed: int = 0,
) -> Tuple[tfn.CorrectedRetrieval, Optional[Mining]]:
    """The retrieval task of a strategy name and its mined source (None without one).

    Args:
      strategy: One of `STRATEGIES`.
      users: `[U]` every user id (the query-side table's anchors).
      titles: `[N]` the catalogue (every title).
      known: The training (user, title) pairs, skipped when drawing mined negatives.
      train_users, train_titles: `[n]` the training interactions (query-side mining
        drops each user's positives from its ranking).
      miner_kind: `"brute"` (exact) or `"scann"`.
      num_negatives: Uniform draws per step.
      hard_count: Mined negatives per example.
      hard_window: Rank window `[lo, hi)` of the `mixed+hard_*` runs.
      hardest_window: Rank window of `hardest_only`.
      hard_weight: Weight of each mined term in the softmax denominator.
      hard_sample: `"random"` within the window or its `"top"` entries.
      hard_margin: Optional NV-Retriever margin (drop mined titles scoring above
        `(1 - margin)` times the positive).
      seed: Seed of the sampled sources' generators.
    """
    negatives = tfn.negatives
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if strategy == "full_softmax":  # the reference: every title, every step
        task = tfn.CorrectedRetrieval(
            frequency=tfn.StreamingFrequencyEstimator(),
            negatives=[negatives.FullCatalogue(titles)],
            remove_accidental_hits=True,
        )
        return task, None
    sources: List[Any] = [negatives.InBatch()]
    if strategy.startswith("mixed"):
        sources.append(negatives.Uniform(titles, count=num_negatives, seed=seed))
    mining = None
    if strategy not in ("logq", "mixed"):
        window = hardest_window if strategy == "hardest_only" else hard_window
        miner = make_miner(miner_kind, titles, window)
        side = "query" if strategy == "mixed+hard_query" else "item"
        table = HardNegativeTable(titles if side == "item" else users, miner.window)
        source = negatives.Mined(
            table,
            titles,
            count=hard_count,
            side=side,
            sample=hard_sample,
            known_positives=known,
            margin=hard_margin,
            weight=hard_weight,
            seed=seed + 1,
        )
        mining = Mining(source, table, miner)
        if side == "query":
            mining.excluded = tfn.callbacks.positives_by_anchor(
                train_users, train_titles, table, miner
            )
        sources.append(source)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(),
        negatives=sources,
        remove_accidental_hits=True,
        # One correction for every mined run (in-batch only or mixed): distinct
        # candidates counted once, corrected by their inclusion probability.
        duplicates="mask" if mining is not None else None,
    )
    return task, mining


def title_genres(args: argparse.Namespace, titles: np.ndarray) -> np.ndarray:
    """`[N, G]` multi-hot genres of each title (G = the tfds genre labels), from the ratings."""
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


def _window(text: str, flag: str, parser: argparse.ArgumentParser) -> Tuple[int, int]:
    try:
        return parse_window(text, flag)
    except ValueError as err:
        parser.error(str(err))


def run(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    """Trains every strategy and returns `{strategy: {metric: value}}`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_flags(parser, STRATEGIES)
    parser.add_argument("--miner", choices=MINERS, default="brute")
    parser.add_argument("--num_negatives", type=int, default=1024, help="uniform draws per step")
    parser.add_argument("--hard_count", type=int, default=8, help="mined negatives per example")
    parser.add_argument("--hard_window", default="10,100", help="ranks lo,hi of the hard runs")
    parser.add_argument("--hardest_window", default="0,10", help="ranks lo,hi of hardest_only")
    parser.add_argument("--hard_warmup_epochs", type=float, default=1.0)
    parser.add_argument("--hard_ramp_epochs", type=float, default=1.0)
    parser.add_argument("--hard_weight", type=float, default=1.0, help="weight of a mined term")
    parser.add_argument("--hard_sample", choices=tfn.negatives.mined.SAMPLING, default="random")
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
    args = parser.parse_args(argv)
    strategies = chosen_strategies(parser, args, STRATEGIES)
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
    hard_window = _window(args.hard_window, "--hard_window", parser)
    hardest_window = _window(args.hardest_window, "--hardest_window", parser)
    # Only the windows of the chosen runs must hold --hard_count entries.
    windows = []
    if any("+hard_" in s for s in strategies):
        windows.append(("--hard_window", hard_window))
    if "hardest_only" in strategies:
        windows.append(("--hardest_window", hardest_window))
    for flag, (lo, hi) in windows:
        if args.hard_count > hi - lo:
            parser.error(f"--hard_count {args.hard_count} exceeds the {flag} of {hi - lo} ranks")
    ks = [int(k) for k in args.ks.split(",")]

    source, split = prepare_split(args, parser, ks)
    users, titles, head = split.users, split.items, split.head
    for flag, (_, hi) in windows:
        if hi > len(titles):
            parser.error(f"{flag}: rank {hi} is beyond the catalogue of {len(titles)} titles")
    steps_per_epoch = math.ceil(len(split.train_users) / args.batch_size)
    schedule = warmup_schedule(
        args.hard_count, steps_per_epoch, args.hard_warmup_epochs, args.hard_ramp_epochs
    )
    print(
        f"data: {source}; {len(split.train_users)} train / {len(split.test_users)} test ratings, "
        f"{len(users)} users, {len(titles)} titles, {head.sum()} head titles; batch "
        f"{args.batch_size} ({steps_per_epoch} steps/epoch), {args.epochs} epochs, miner "
        f"{args.miner}; mined count schedule (step, count): {schedule}"
    )

    genres = title_genres(args, titles) if args.item_tower != "id" else None
    known = KnownPositives(split.train_users, split.train_items)
    held_out = KnownPositives(split.test_users, split.test_items)
    train = training_batches(split.train_users, split.train_items, args.batch_size, args.seed)
    results: Dict[str, Dict[str, float]] = {}
    details: Dict[str, Dict[str, Any]] = {}
    models: Dict[str, Any] = {}
    initial: Optional[List[np.ndarray]] = None
    finished: List[Any] = []
    for strategy in strategies:
        tf.keras.utils.set_random_seed(args.seed)
        task, mining = make_task(
            strategy,
            users,
            titles,
            known,
            split.train_users,
            split.train_items,
            miner_kind=args.miner,
            num_negatives=args.num_negatives,
            hard_count=args.hard_count,
            hard_window=hard_window,
            hardest_window=hardest_window,
            hard_weight=args.hard_weight,
            hard_sample=args.hard_sample,
            hard_margin=args.hard_margin,
        )
        item_tower = None
        if genres is not None:
            item_tower = ContentItemTower(
                titles,
                labels=genres,
                embedding_dim=args.embedding_dim,
                use_id=args.item_tower == "content",
            )
        model = HardNegativesModel(users, titles, task, args.embedding_dim, item_tower)
        build(model, users, titles)
        if initial is None:
            initial = tower_weights(model)
        else:  # every run starts from the first one's weights
            set_tower_weights(model, initial)
        model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
        callbacks = []
        refresh = None
        if mining is not None:
            refresh = tfn.callbacks.RefreshHardNegatives(
                mining.miner,
                mining.table,
                model.item_tower,
                query_tower=model.query_tower if mining.source.side == "query" else None,
                excluded=mining.excluded,
                every_n_epochs=1,
                every_n_steps=args.refresh_every_steps,
            )
            curriculum = tfn.callbacks.NegativeCurriculum({mining.source: {"count": schedule}})
            callbacks = [refresh, curriculum]
        start = time.perf_counter()
        history = model.fit(train, epochs=args.epochs, verbose=0, callbacks=callbacks)
        seconds = time.perf_counter() - start
        losses = history.history.get("loss", [])
        queries = model.query_tower(tf.constant(split.test_users)).numpy()
        items = model.item_tower(tf.constant(titles)).numpy()
        row = {
            **recall_at_k(queries, items, split.test_index, ks, head),
            "final_loss": float(losses[-1]) if losses else float("nan"),
            "train_seconds": seconds,
            "refreshes": 0.0,
            "refresh_seconds": 0.0,
            "refresh_failures": 0.0,
            "fallbacks": float("nan"),
            "mined_count_final": float("nan"),
            "false_negative_rate": float("nan"),
        }
        if mining is not None:
            side = mining.source.side
            rate = false_negative_rate_by_rank(
                mining.table,
                mining.source.catalogue,
                split.train_items if side == "item" else split.train_users,
                split.train_users,
                held_out,
                mining.miner.min_rank,
                [mining.miner.min_rank, mining.miner.max_rank],
            )[0]
            row.update(
                refreshes=float(mining.table.refreshes.numpy()),
                refresh_seconds=float(sum(refresh.timings)),
                refresh_failures=float(refresh.failures),
                fallbacks=float(mining.source.fallbacks.numpy()),
                mined_count_final=float(mining.source.active_count.numpy()),
                false_negative_rate=rate["rate"],
            )
            details[strategy] = {
                "side": side,
                "window": [mining.miner.min_rank, mining.miner.max_rank],
                "refresh_timings": list(refresh.timings),
                "empty_anchors": list(refresh.empty_anchors),
                "mined_for_false_negative_rate": rate["mined"],
            }
        results[strategy] = row
        models[strategy] = model
        # Keep every run's objects alive: autograph caches converted methods by object
        # identity, and a new object reusing a freed one's id could hit a stale entry.
        finished.append((model, task))
    print_table(results, ks)
    print_mining(results, details)
    if args.output_json:
        write_json(
            args.output_json,
            {
                "source": source,
                "miner": args.miner,
                "batch_size": args.batch_size,
                "epochs": args.epochs,
                "steps_per_epoch": steps_per_epoch,
                "num_negatives": args.num_negatives,
                "hard_count": args.hard_count,
                "count_schedule": schedule,
                "item_tower": args.item_tower,
                "hard_weight": args.hard_weight,
                "hard_sample": args.hard_sample,
                "hard_margin": args.hard_margin,
                "refresh_every_steps": args.refresh_every_steps,
                "num_users": len(users),
                "num_titles": len(titles),
                "num_head_titles": int(head.sum()),
                "mining": details,
            },
            results,
        )
    export_and_query(args, results, models, split.test_users, titles)  # the best run, served
    return results


def print_mining(results: Dict[str, Dict[str, float]], details: Dict[str, Dict[str, Any]]) -> None:
    """Prints the refreshes, their timings, fallbacks and false-negative rate of mined runs."""
    if not details:
        return
    width = max([len("strategy")] + [len(name) for name in details]) + 2
    print(
        f"{'strategy':{width}s}{'side':>6s}{'window':>10s}{'refreshes':>10s}{'failed':>7s}"
        f"{'fallbacks':>10s}{'final count':>12s}{'FN rate':>9s}  refresh s (each)"
    )
    for name, info in details.items():
        row = results[name]
        timings = ", ".join(f"{t:.2f}" for t in info["refresh_timings"])
        lo, hi = info["window"]
        print(
            f"{name:{width}s}{info['side']:>6s}{f'[{lo},{hi})':>10s}"
            f"{row['refreshes']:10.0f}{row['refresh_failures']:7.0f}{row['fallbacks']:10.0f}"
            f"{row['mined_count_final']:12.0f}{row['false_negative_rate']:9.4f}  {timings}"
        )


if __name__ == "__main__":
    main(run)
