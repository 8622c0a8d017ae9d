"""TFRS's MovieLens retrieval model trained with different mixes of negatives, side by side.

The protocol of `examples/movielens_logq.py` (the TFRS tutorial's: ratings of
`movielens/100k-ratings` as (user_id, movie_title) pairs, 80/20 random split with
seed 42, `StringLookup` + `Embedding(32)` towers, Adagrad(0.1), batch 8192, 3
epochs), every run from the same initial weights, with `CorrectedRetrieval` and
these sources of negatives (sampled sources draw `--num_negatives` titles per
step, shared by the batch; accidental hits are removed and duplicate candidates
counted once, the task's defaults with sampled sources):

* `inbatch_logq`: the batch's other positives, log-Q corrected with a
  `StreamingFrequencyEstimator` (learned while training);
* `inbatch+uniform`: those plus 1024 titles drawn uniformly from the catalogue,
  each logit corrected with the probability of the mixture;
* `inbatch+popularity0.75`: in-batch plus 1024 titles drawn with probability
  proportional to (training count + 1)^0.75 (the pseudo-count 1 gives titles rated
  only in the test split a non-zero chance, which `Popularity` requires);
* `uniform_only`: 1024 uniform titles and no in-batch negatives;
* `full_softmax`: every title every step (`FullCatalogue`), the exact softmax;
* `inbatch+uniform_bpr`: `inbatch+uniform` with the BPR loss instead of softmax.

Test recall@10/50/100 over every title, overall and split into head titles (the
most popular ones holding half the training interactions) and tail titles.

Usage:
  python examples/movielens_mixed.py                       # tfds (downloads)
  python examples/movielens_mixed.py --movielens_dir ../shared/data/ml-100k  # offline
"""

import argparse
import functools
from typing import Dict, Optional, Sequence

import tfrs_negatives as tfn  # first: selects Keras 2 for TFRS
from tfrs_negatives.experiments import TwoTowerModel, distribution, training_batches
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
from tfrs_negatives.experiments.serving import export_and_query

import numpy as np
import tensorflow as tf

STRATEGIES = (
    "inbatch_logq",
    "inbatch+uniform",
    "inbatch+popularity0.75",
    "uniform_only",
    "full_softmax",
    "inbatch+uniform_bpr",
)
SOURCE_SEED = 0  # seed of the sampled sources' generators


def make_task(
    strategy: str,
    titles: np.ndarray,
    train_counts: np.ndarray,
    num_negatives: int = 1024,
    jit_compile: bool = True,
    **options,
) -> tfn.CorrectedRetrieval:
    """The retrieval task of a strategy name.

    Sampled sources draw from seed `SOURCE_SEED`: every run sees the same draws.

    Args:
      strategy: One of `STRATEGIES`.
      titles: `[N]` the catalogue (every title).
      train_counts: `[N]` training ratings of each title, aligned with `titles`.
      num_negatives: Draws per step of each sampled source.
      jit_compile: The task's `jit_compile` (loss fused with XLA).
      **options: More `CorrectedRetrieval` arguments (e.g. `cross_replica_negatives`).
    """
    seed = SOURCE_SEED
    negatives = tfn.negatives
    task = functools.partial(tfn.CorrectedRetrieval, jit_compile=jit_compile, **options)
    if strategy == "inbatch_logq":
        return task(
            frequency=tfn.StreamingFrequencyEstimator(),
            negatives=[negatives.InBatch()],
            remove_accidental_hits=True,
        )
    if strategy in ("inbatch+uniform", "inbatch+uniform_bpr"):
        return task(
            frequency=tfn.StreamingFrequencyEstimator(),
            negatives=[
                negatives.InBatch(),
                negatives.Uniform(titles, count=num_negatives, seed=seed),
            ],
            sampled_loss="bpr" if strategy.endswith("_bpr") else "softmax",
        )
    if strategy == "inbatch+popularity0.75":
        return task(
            frequency=tfn.StreamingFrequencyEstimator(),
            negatives=[
                negatives.InBatch(),
                negatives.Popularity(
                    titles,
                    count=num_negatives,
                    power=0.75,
                    # + 1: titles rated only in the test split must stay drawable.
                    counts=np.asarray(train_counts, np.float64) + 1.0,
                    seed=seed,
                ),
            ],
        )
    if strategy == "uniform_only":
        return task(negatives=[negatives.Uniform(titles, count=num_negatives, seed=seed)])
    if strategy == "full_softmax":
        return task(negatives=[negatives.FullCatalogue(titles)])
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def run(argv: Optional[Sequence[str]] = None) -> Results:
    """Trains every strategy and returns `{strategy: {metric: value}}`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_flags(parser, STRATEGIES, epochs_help="0: evaluate untrained")
    parser.add_argument("--num_negatives", type=int, default=1024)
    parser.add_argument(
        "--jit_compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fuse each task's loss with XLA (the library's default; --no-jit_compile runs "
        "the same ops unfused)",
    )
    args = parser.parse_args(argv)
    strategies = chosen_strategies(parser, args, STRATEGIES)
    if args.epochs < 0:
        parser.error(f"--epochs must be >= 0, got {args.epochs}")
    if args.num_negatives < 1:
        parser.error(f"--num_negatives must be >= 1, got {args.num_negatives}")
    ks = parse_ks(args)
    replicas = prepare_distribution(args, parser)  # before any TF op
    source, split = prepare_split(args, parser, ks)
    users, titles, head = split.users, split.items, split.head
    train_counts = split.train_counts
    print(
        f"data: {source}; {len(split.train_users)} train / {len(split.test_users)} test ratings, "
        f"{len(users)} users, {len(titles)} titles ({int((train_counts == 0).sum())} unrated "
        f"in training), {head.sum()} head titles; {args.num_negatives} sampled negatives"
    )

    train = distribution.distributed(
        training_batches(split.train_users, split.train_items, args.batch_size, args.seed),
        replicas,
    )
    results: Results = {}
    models: Dict[str, tf.keras.Model] = {}
    same_start = SameStart()  # every mix starts from the first one's weights
    for strategy in strategies:
        tf.keras.utils.set_random_seed(args.seed)
        with distribution.scope(replicas):
            task = make_task(
                strategy,
                titles,
                train_counts,
                args.num_negatives,
                jit_compile=args.jit_compile,
                **distribution.task_options(args),
            )
            # The tutorial's towers; the task also gets the item tower to embed sampled titles.
            model = models[strategy] = TwoTowerModel(users, titles, task, args.embedding_dim)
            same_start(model, split)
            model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
            losses, seconds = fit_timed(model, train, args.epochs)  # 0 epochs: initial weights
        results[strategy] = {
            **evaluate_recall(model, split, ks),
            "final_loss": final_loss(losses),
            "train_seconds": seconds,
        }
    print_table(results, ks)
    if not distribution.is_chief(replicas):
        return results  # the chief writes and exports
    if args.output_json:
        write_json(
            args.output_json,
            {
                "source": source,
                "num_negatives": args.num_negatives,
                "num_titles": len(titles),
                "num_head_titles": int(head.sum()),
            },
            results,
        )
    export_and_query(args, results, models, split.test_users, titles)  # the best run, served
    return results


if __name__ == "__main__":
    main(run)
