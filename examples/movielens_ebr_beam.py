"""The EBR loop on MovieLens with the Beam steps: train, export towers, embed, mine, retrain.

Facebook's embedding-based retrieval (Huang et al. 2020, KDD) mines hard negatives
offline: embed every query and item with the trained towers, rank the items of each
query, keep a window of ranks (101-500 in the paper; below the top, which holds
unlabelled positives), and retrain with them. This example runs that loop with this
package's offline steps, on the DirectRunner (the same steps run on Dataflow, Flink or
Spark by their pipeline options, `--beam_args`):

1. round 0: the TFRS tutorial's two towers (`movielens/100k-ratings`, 80/20 split with
   seed 42, `StringLookup` + `Embedding(32)`, Adagrad(0.1), batch 8192, 3 epochs) trained
   with in-batch negatives, log-Q corrected (`CorrectedRetrieval`, streaming estimator;
   accidental hits removed, duplicates counted once);
2. `export.save_tower` writes the item tower (title -> embedding) and the query tower
   (user -> embedding) as SavedModels;
3. `tfrs-negatives embed` (`beam.embed_records`) applies them to TFRecord files of the
   catalogue (one record per title) and of the anchors: each user (query side, EBR's
   own; `exclude` = the user's training titles) or each title (`--side item`);
4. `tfrs-negatives mine` (`beam.mine_windows`, `--index exact|scann`, `--num_shards`)
   keeps ranks `--window` (default [10, 100) of 1,664 titles) of every anchor;
5. round 1: the same towers from the same initial weights, trained with in-batch
   negatives plus `--hard_count` (8) of each example's mined titles, which the input
   pipeline adds to the example (`data.with_mined_negatives`) and the task reads from
   the features (`negatives.FromFeatures`, `negative_ids=`): nothing of catalogue size
   in the model. `--rounds 2` mines again from round 1's towers, and so on.

Printed: recall@10/50/100 over every title per round, overall, head and tail titles;
the Beam steps' times; the paired difference of each round against round 0.

Usage:
  python examples/movielens_ebr_beam.py                                  # tfds (downloads)
  python examples/movielens_ebr_beam.py --movielens_dir ../shared/data/ml-100k
  python examples/movielens_ebr_beam.py --movielens_dir ../shared/data/ml-100k \\
      --side item --index scann --beam_args="--direct_num_workers=2 \\
      --direct_running_mode=multi_processing"
"""

import argparse
import os
import shlex
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import tfrs_negatives as tfn  # first: selects Keras 2 for TFRS
from tfrs_negatives import negatives
from tfrs_negatives.beam import embed_records, mine_windows
from tfrs_negatives.beam.records import example_bytes
from tfrs_negatives.data import with_mined_negatives
from tfrs_negatives.experiments import training_batches
from tfrs_negatives.experiments.hard_negatives import HardNegativesModel
from tfrs_negatives.experiments.harness import (
    Results,
    SameStart,
    evaluate_recall,
    final_loss,
    fit_timed,
    main,
    parse_ks,
    prepare_split,
    print_table,
    write_json,
)
from tfrs_negatives.export import save_tower

import numpy as np
import tensorflow as tf

MINED_FEATURE = "mined_negatives"


class EBRModel(HardNegativesModel):
    """The tutorial's towers; the task also reads each example's mined titles, if any."""

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
            negative_ids=features.get(MINED_FEATURE),
        )


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="100k-ratings")
    parser.add_argument("--movielens_dir", default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=8192)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--embedding_dim", type=int, default=32)
    parser.add_argument("--ks", default="10,50,100")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=1, help="mine-and-retrain rounds")
    parser.add_argument("--side", choices=["query", "item"], default="query")
    parser.add_argument("--window", default="10,100", help="MIN,MAX mined ranks")
    parser.add_argument("--hard_count", type=int, default=8, help="mined negatives per example")
    parser.add_argument("--index", choices=["exact", "scann"], default="exact")
    parser.add_argument("--num_shards", type=int, default=4)
    parser.add_argument("--beam_args", default="", help="Beam pipeline options, one string")
    parser.add_argument("--work_dir", default=None, help="keep the files here (default: temp)")
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    try:
        args.window = tuple(int(x) for x in args.window.split(","))
        assert len(args.window) == 2
    except (ValueError, AssertionError):
        parser.error(f"--window must be MIN,MAX, got {args.window!r}")
    if args.rounds < 1 or args.hard_count < 1:
        parser.error("--rounds and --hard_count must be >= 1")
    args.parser = parser
    return args


def make_task(titles: np.ndarray, known, hard_count: int = 0) -> tfn.CorrectedRetrieval:
    """In-batch + log-Q; with `hard_count`, plus that many of each example's mined titles."""
    sources: List[Any] = [negatives.InBatch()]
    if hard_count:
        sources.append(negatives.FromFeatures(titles, hard_count, known_positives=known, seed=0))
    return tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(),
        negatives=sources,
        remove_accidental_hits=True,
        duplicates="mask",  # one correction for both rounds: distinct candidates once
    )


def write_records(path: str, rows: List[Dict[str, list]]) -> str:
    """One TFRecord file of `tf.train.Example` id-list features."""
    with tf.io.TFRecordWriter(path) as writer:
        for row in rows:
            writer.write(example_bytes(**row))
    return path


def anchor_rows(split, side: str) -> List[Dict[str, list]]:
    """Users with their training titles as `exclude` (query side), or every title."""
    if side == "item":
        return [{"id": [t], "movie_title": [t]} for t in split.items]
    seen: Dict[bytes, list] = {}
    for user, title in zip(split.train_users, split.train_items):
        seen.setdefault(user, []).append(title)
    return [
        {"id": [u], "user_id": [u], "exclude": sorted(set(seen.get(u, [])))} for u in split.users
    ]


def mine_from(model: EBRModel, split, args, directory: str) -> Dict[str, Any]:
    """Exports the towers, embeds the catalogue and anchors, mines; returns paths and times."""
    beam_args = shlex.split(args.beam_args)
    times: Dict[str, float] = {}
    string = tf.TensorSpec([None], tf.string)
    start = time.perf_counter()
    item_model = save_tower(model.item_tower, f"{directory}/item_tower", {"movie_title": string})
    query_model = save_tower(model.query_tower, f"{directory}/query_tower", {"user_id": string})
    times["export_s"] = time.perf_counter() - start
    titles = write_records(
        f"{directory}/titles.tfrecord", [{"id": [t], "movie_title": [t]} for t in split.items]
    )
    anchors_in = write_records(f"{directory}/anchors_in.tfrecord", anchor_rows(split, args.side))
    start = time.perf_counter()
    catalogue = embed_records(item_model, titles, f"{directory}/catalogue", pipeline_args=beam_args)
    tower = query_model if args.side == "query" else item_model
    keep = ["exclude"] if args.side == "query" else []
    anchors = embed_records(
        tower, anchors_in, f"{directory}/anchors", pipeline_args=beam_args, keep=keep
    )
    times["embed_s"] = time.perf_counter() - start
    start = time.perf_counter()
    mined = mine_windows(
        f"{catalogue}-*-of-*", f"{anchors}-*-of-*", f"{directory}/mined", args.window,
        args.num_shards, args.index, pipeline_args=beam_args,
    )  # fmt: skip
    times["mine_s"] = time.perf_counter() - start
    return {"mined": f"{mined}-*-of-*", **times}


def train_round(args, split, same_start, hard_count: int, mined: Optional[str]) -> EBRModel:
    """One round: the towers from the shared start, trained with or without mined negatives."""
    tf.keras.utils.set_random_seed(args.seed)
    known = tfn.mining.KnownPositives(split.train_users, split.train_items)
    model = EBRModel(
        split.users, split.items, make_task(split.items, known, hard_count), args.embedding_dim
    )
    same_start(model, split)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
    train = training_batches(split.train_users, split.train_items, args.batch_size, args.seed)
    if mined is not None:
        anchor_key = "user_id" if args.side == "query" else "movie_title"
        train = with_mined_negatives(train, mined, anchor_key, MINED_FEATURE)
    model.losses_per_epoch, model.train_seconds = fit_timed(model, train, args.epochs)
    return model


def run(argv: Optional[Sequence[str]] = None) -> Results:
    """Round 0, then `--rounds` mine-and-retrain rounds; returns `{round: {metric: value}}`."""
    args = parse_args(argv)
    ks = parse_ks(args)
    source, split = prepare_split(args, args.parser, ks)
    if args.window[1] >= len(split.items):
        args.parser.error(f"--window {args.window} must end below the {len(split.items)} titles")
    print(
        f"data: {source}; {len(split.train_users)} train / {len(split.test_users)} test, "
        f"{len(split.users)} users, {len(split.items)} titles; {args.side}-side mining, ranks "
        f"{args.window}, {args.index} index over {args.num_shards} shards"
    )
    work = args.work_dir or tempfile.mkdtemp(prefix="ebr-")
    same_start = SameStart()
    results: Results = {}
    model = train_round(args, split, same_start, 0, None)
    results["round 0 (in-batch + log-Q)"] = _row(model, split, ks, {})
    for round_ in range(1, args.rounds + 1):
        directory = os.path.join(work, f"round{round_}")
        steps = mine_from(model, split, args, directory)
        model = train_round(args, split, same_start, args.hard_count, steps["mined"])
        steps.pop("mined")
        fallbacks = int(model.task.negatives[1].fallbacks.numpy())
        results[f"round {round_} (+{args.hard_count} mined)"] = _row(
            model, split, ks, {**steps, "fallbacks": fallbacks}
        )
    print_table(results, ks)
    _print_steps_and_pairs(results, ks)
    if args.output_json:
        write_json(args.output_json, {"source": source, "side": args.side}, results)
    return results


def _row(model: EBRModel, split, ks, extra: Dict[str, float]) -> Dict[str, float]:
    return {
        **evaluate_recall(model, split, ks),
        "final_loss": final_loss(model.losses_per_epoch),
        "train_seconds": model.train_seconds,
        **extra,
    }


def _print_steps_and_pairs(results: Results, ks: List[int]) -> None:
    names = list(results)
    base = results[names[0]]
    top = f"recall@{max(ks)}"
    for name in names[1:]:
        row = results[name]
        steps = ", ".join(f"{k[:-2]} {row[k]:.1f} s" for k in ("export_s", "embed_s", "mine_s"))
        print(
            f"{name}: Beam steps {steps}; fallbacks {row['fallbacks']}; {top} vs round 0 "
            f"{row[top] - base[top]:+.4f} (head {row['head_' + top] - base['head_' + top]:+.4f}, "
            f"tail {row['tail_' + top] - base['tail_' + top]:+.4f})"
        )


if __name__ == "__main__":
    main(run)
