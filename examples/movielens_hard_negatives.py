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
from typing import Any, Dict, Optional, Sequence

import tfrs_negatives as tfn  # first: selects Keras 2 for TFRS
from tfrs_negatives.experiments import distribution, training_batches, warmup_schedule
from tfrs_negatives.experiments import hard_negatives as protocol
from tfrs_negatives.experiments.harness import (
    Results,
    SameStart,
    add_common_flags,
    chosen_strategies,
    evaluate_recall,
    final_loss,
    fit_timed,
    main,
    parse_ks,
    prepare_distribution,
    prepare_split,
    print_table,
    write_json,
)
from tfrs_negatives.experiments.mined_runs import (
    NO_MINING,
    mining_callbacks,
    mining_results,
    print_mining,
)
from tfrs_negatives.experiments.serving import export_and_query

import tensorflow as tf

STRATEGIES = protocol.STRATEGIES


def run(argv: Optional[Sequence[str]] = None) -> Results:
    """Trains every strategy and returns `{strategy: {metric: value}}`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_flags(parser, STRATEGIES)
    protocol.add_flags(parser)  # --miner, --hard_count, --hard_window, --item_tower, ...
    args = parser.parse_args(argv)
    strategies = chosen_strategies(parser, args, STRATEGIES)
    hard_window, hardest_window, windows = protocol.checked_windows(parser, args, strategies)
    ks = parse_ks(args)
    replicas = prepare_distribution(args, parser)  # before any TF op
    source, split = prepare_split(args, parser, ks)
    users, titles, head = split.users, split.items, split.head
    protocol.check_windows_fit(parser, windows, len(titles))
    steps_per_epoch = math.ceil(len(split.train_users) / args.batch_size)
    # The mined count: 0 while the table is mined from near-random towers, then a ramp.
    schedule = warmup_schedule(
        args.hard_count, steps_per_epoch, args.hard_warmup_epochs, args.hard_ramp_epochs
    )
    print(
        f"data: {source}; {len(split.train_users)} train / {len(split.test_users)} test ratings, "
        f"{len(users)} users, {len(titles)} titles, {head.sum()} head titles; batch "
        f"{args.batch_size} ({steps_per_epoch} steps/epoch), {args.epochs} epochs, miner "
        f"{args.miner}; mined count schedule (step, count): {schedule}"
    )

    genres = protocol.title_genres(args, titles) if args.item_tower != "id" else None
    data = protocol.TaskData.from_split(split)  # users, titles, training pairs (known)
    options = protocol.HardOptions.from_flags(args, hard_window, hardest_window)
    held_out = tfn.mining.KnownPositives(split.test_users, split.test_items)
    train = distribution.distributed(
        training_batches(split.train_users, split.train_items, args.batch_size, args.seed),
        replicas,
    )
    results: Results = {}
    details: Dict[str, Dict[str, Any]] = {}
    models: Dict[str, Any] = {}
    same_start = SameStart()  # every run starts from the first one's weights
    finished = []
    for strategy in strategies:
        tf.keras.utils.set_random_seed(args.seed)
        with distribution.scope(replicas):
            task, mining = protocol.make_task(strategy, data, options)
            tower = protocol.item_tower(args.item_tower, titles, genres, args.embedding_dim)
            model = protocol.HardNegativesModel(users, titles, task, args.embedding_dim, tower)
            same_start(model, split)
            model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
            # Re-mined from the model being trained every epoch (or --refresh_every_steps).
            refresh, callbacks = mining_callbacks(mining, model, schedule, args.refresh_every_steps)
            losses, seconds = fit_timed(model, train, args.epochs, callbacks)
        row = {
            **evaluate_recall(model, split, ks),
            "final_loss": final_loss(losses),
            "train_seconds": seconds,
            **NO_MINING,
        }
        if mining is not None:
            columns, details[strategy] = mining_results(mining, refresh, split, held_out)
            row.update(columns)
        results[strategy] = row
        models[strategy] = model
        # Keep every run's objects alive: autograph caches converted methods by object
        # identity, and a new object reusing a freed one's id could hit a stale entry.
        finished.append((model, task))
    print_table(results, ks)
    print_mining(results, details)
    if not distribution.is_chief(replicas):
        return results  # the chief writes and exports
    if args.output_json:
        header = {
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
        }
        write_json(args.output_json, header, results)
    export_and_query(args, results, models, split.test_users, titles)  # the best run, served
    return results


if __name__ == "__main__":
    main(run)
