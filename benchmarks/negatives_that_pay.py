"""Where do cross-batch, cached, dynamic and hardness-weighted negatives pay? Paired over seeds.

Every run of a setting trains the same two towers from the same initial weights on
the same split (one per `--seeds` entry: the seed sets the 80/20 split, the initial
weights and the samplers), evaluating test recall@100 (overall, head, tail) over the
whole catalogue `--evals_per_epoch` times per epoch. It prints, per run:

* final R@100 / head / tail as mean and spread (max - min) over the seeds;
* the paired difference against the first run (the control), mean and [min, max];
* median step time and its ratio to the control's (the ratio is what transfers
  between machines), and the recall the control reached in the same wall-clock;
* the run's own R@100 at the control's wall-clock (NaN if its first evaluation
  came later: raise `--evals_per_epoch`);
* negatives per example in the loss and candidates scored per example;
* sample efficiency: the negatives (in the loss) processed per example until the
  run first reached the control's final R@100, and the control's own count over it.

Runs are `+`-joined parts (the first is the base):
  base   `logq` (in-batch, streaming log-Q, hits removed) or `none` (no in-batch);
  `full` every catalogue item (the full softmax); `uniformK` K uniform draws per step;
  `xbmM` a cross-batch memory of M positives; `cacheK` K per row from a negative cache;
  `dynMxK` / `dynsmMxK` K of M shared uniform candidates per row, the hardest / by
  softmax sampling; `hclB` hardness weighting beta=B; `dclT` the debiased term tau+=T;
  `aS` correction strength S; `bpr`, `bce`, `softmax` the run's loss (else --loss);
  `nocorr` no log-Q correction (BPR/DNS as published).
E.g. `logq+cache8`, `none+uniform1` (with `--loss bpr`), `logq+a0.75+dynsm256x8`.

Usage (MovieLens 100K at batch 128):
  python benchmarks/negatives_that_pay.py --movielens_dir ../shared/data/ml-100k \\
      --batch_size 128 --runs logq,full,logq+xbm1024,logq+cache8,logq+dyn256x8
"""

import argparse
import json
import math
import re
import time
from types import SimpleNamespace
from typing import Dict, List, Optional

import tfrs_negatives  # noqa: F401  (sets up tf-keras before TF is imported)
from tfrs_negatives import negatives
from tfrs_negatives.estimators import StreamingFrequencyEstimator
from tfrs_negatives.evaluation import recall_from_ranks, true_item_ranks
from tfrs_negatives.experiments import hard_negatives as protocol
from tfrs_negatives.experiments.datasets import load_interactions
from tfrs_negatives.experiments.model import build
from tfrs_negatives.experiments.splits import split_interactions
from tfrs_negatives.experiments.synthetic import SyntheticConfig
from tfrs_negatives.experiments.training import StepTimer
from tfrs_negatives.mining import KnownPositives
from tfrs_negatives.tasks import CorrectedRetrieval

import numpy as np
import tensorflow as tf

PART = re.compile(
    r"^(?:(?P<full>full)|uniform(?P<uniform>\d+)|xbm(?P<xbm>\d+)|cache(?P<cache>\d+)"
    r"|dyn(?P<sm>sm)?(?P<cands>\d+)x(?P<keep>\d+)|hcl(?P<hcl>[\d.]+)|dcl(?P<dcl>[\d.]+)"
    r"|a(?P<a>[\d.]+)|(?P<loss>softmax|bpr|bce)|(?P<nocorr>nocorr))$"
)


class RunSpec(SimpleNamespace):
    """A parsed run: its sources, task options, and negatives per example."""


def parse_run(text: str) -> RunSpec:
    """Parses a run name (see the module docstring) into a `RunSpec`."""
    base, *parts = text.split("+")
    if base not in ("logq", "none"):
        raise SystemExit(f"--runs: {text!r} must start with 'logq' or 'none'")
    spec = RunSpec(name=text, in_batch=base == "logq", parts=[], options={})
    for part in parts:
        match = PART.match(part)
        if match is None:
            raise SystemExit(f"--runs: unknown part {part!r} of {text!r}")
        values = {k: v for k, v in match.groupdict().items() if v is not None}
        if "hcl" in values:
            spec.options["hardness"] = float(values["hcl"])
        elif "dcl" in values:
            spec.options["positive_prior"] = float(values["dcl"])
        elif "a" in values:
            spec.options["correction_strength"] = float(values["a"])
        elif "loss" in values:
            spec.options["sampled_loss"] = values["loss"]
        elif "nocorr" in values:
            spec.options["correction"] = None
        else:
            spec.parts.append(values)
    return spec


def sources_of(spec: RunSpec, split, batch: int, seed: int, args) -> tuple:
    """`(sources, in-loss per example, scored per example)` of a run."""
    items = split.items
    known = KnownPositives(split.train_users, split.train_items)
    sources = [negatives.InBatch(name="in_batch")] if spec.in_batch else []
    in_loss = scored = float(batch - 1) if spec.in_batch else 0.0
    for values in spec.parts:
        if "full" in values:
            sources.append(negatives.FullCatalogue(items, name="full"))
            in_loss += len(items)
            scored += len(items)
        elif "uniform" in values:
            k = int(values["uniform"])
            sources.append(negatives.Uniform(items, count=k, seed=seed, name="uniform"))
            in_loss += k
            scored += k
        elif "xbm" in values:
            m = int(values["xbm"])
            sources.append(negatives.CrossBatch(memory=m, name="cross_batch"))
            in_loss += m
            scored += m
        elif "cache" in values:
            k = int(values["cache"])
            refresh = min(args.cache_refresh, len(items))
            sources.append(
                negatives.Cache(
                    items, count=k, refresh=refresh, known_positives=known, seed=seed, name="cache"
                )
            )
            in_loss += k
            scored += len(items) + k
        else:
            m, k = int(values["cands"]), int(values["keep"])
            sources.append(
                negatives.Dynamic(
                    items,
                    candidates=m,
                    keep=k,
                    select="softmax" if "sm" in values else "top",
                    known_positives=known,
                    seed=seed,
                    name="dynamic",
                )
            )
            in_loss += k
            scored += m
    return sources, in_loss, scored


def make_task(spec: RunSpec, split, batch: int, seed: int, args) -> tuple:
    sources, in_loss, scored = sources_of(spec, split, batch, seed, args)
    stream = spec.in_batch or any("xbm" in v for v in spec.parts)
    task = CorrectedRetrieval(
        frequency=StreamingFrequencyEstimator() if stream else None,
        negatives=sources,
        remove_accidental_hits=True,
        diagnostics=False,
        **{"sampled_loss": args.loss, **spec.options},
    )
    return task, in_loss, scored


def evaluate(model, split) -> Dict[str, float]:
    queries = model.query_tower(tf.constant(split.test_users)).numpy()
    items = model.item_tower(tf.constant(split.items)).numpy()
    ranks = true_item_ranks(queries, items, split.test_index)
    result = recall_from_ranks(ranks, split.test_index, [100], split.head)
    return {k: result[k] for k in ("recall@100", "head_recall@100", "tail_recall@100")}


def train_run(spec: RunSpec, split, seed: int, args, genres, initial) -> dict:  # noqa: PLR0913
    """Trains one run, evaluating `evals_per_epoch` times per epoch; returns its curve."""
    tf.keras.utils.set_random_seed(seed)
    task, in_loss, scored = make_task(spec, split, args.batch_size, seed + 7, args)
    tower = protocol.item_tower(args.item_tower, split.items, genres, args.embedding_dim)
    model = protocol.HardNegativesModel(split.users, split.items, task, args.embedding_dim, tower)
    build(model, split.users, split.items)
    if initial is not None:
        for variable, value in zip(model.trainable_variables, initial):
            variable.assign(value)
    start = [v.numpy() for v in model.trainable_variables]
    model.compile(optimizer=tf.keras.optimizers.Adagrad(args.learning_rate))
    n = len(split.train_users)
    steps = math.ceil(n / args.batch_size)
    chunk = max(1, steps // args.evals_per_epoch)
    data = (
        tf.data.Dataset.from_tensor_slices(
            {"user_id": split.train_users, "movie_title": split.train_items}
        )
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .batch(args.batch_size, drop_remainder=True)
        .repeat()
    )
    timer = StepTimer()
    curve, examples, seconds = [], 0, 0.0
    for _ in range(args.epochs * args.evals_per_epoch):
        begin = time.perf_counter()
        history = model.fit(data, steps_per_epoch=chunk, epochs=1, verbose=0, callbacks=[timer])
        seconds += time.perf_counter() - begin
        examples += chunk * args.batch_size
        point = evaluate(model, split)
        point.update(
            examples=examples,
            negatives=examples * in_loss,
            seconds=seconds,
            loss=float(history.history["loss"][-1]),
        )
        curve.append(point)
    return {
        "curve": curve,
        "step_ms": timer.median_ms,
        "in_loss": in_loss,
        "scored": scored,
        "start": start,
    }


def first_reaching(curve: List[dict], target: float, key: str) -> Optional[float]:
    """`key` (linearly interpolated) where the curve's R@100 first reaches `target`, or None."""
    previous = {"recall@100": 0.0, key: 0.0}
    for point in curve:
        if point["recall@100"] >= target:
            span = point["recall@100"] - previous["recall@100"]
            share = 1.0 if span <= 0 else (target - previous["recall@100"]) / span
            return previous[key] + share * (point[key] - previous[key])
        previous = point
    return None


def recall_at_seconds(curve: List[dict], seconds: float) -> float:
    """The curve's R@100 at the last evaluation within `seconds` of training."""
    within = [p["recall@100"] for p in curve if p["seconds"] <= seconds * 1.0001]
    return within[-1] if within else float("nan")


def summarise(results: Dict[str, Dict[int, dict]], runs: List[str]) -> List[str]:
    control = runs[0]
    seeds = list(results[control])
    keys = ("recall@100", "head_recall@100", "tail_recall@100")
    lines = [
        f"control: {control}; seeds {seeds}; mean [min, max] over seeds; paired = run - control",
        f"{'run':28s} {'R@100':>15s} {'head':>15s} {'tail':>15s}  {'paired R@100':>24s}"
        f" {'rel':>7s} {'ms/step':>8s} {'x ctrl':>6s} {'ctrl@time':>9s} {'@ctrl time':>10s}"
        f" {'neg/ex':>7s} {'scored':>7s} {'negs to ctrl R':>14s} {'exs to ctrl R':>13s}",
    ]
    control_final = {s: results[control][s]["curve"][-1] for s in seeds}
    control_ms = np.mean([results[control][s]["step_ms"] for s in seeds])
    for run in runs:
        per = results[run]
        finals = {k: np.array([per[s]["curve"][-1][k] for s in seeds]) for k in keys}
        cells = [f"{v.mean():.4f}±{v.max() - v.min():.4f}" for v in finals.values()]
        diff = np.array([per[s]["curve"][-1]["recall@100"] - control_final[s]["recall@100"]
                         for s in seeds])  # fmt: skip
        base = np.mean([control_final[s]["recall@100"] for s in seeds])
        ms = np.mean([per[s]["step_ms"] for s in seeds])
        at_time = np.mean(
            [recall_at_seconds(results[control][s]["curve"], per[s]["curve"][-1]["seconds"])
             for s in seeds]  # fmt: skip
        )
        own_at_control_time = np.mean(
            [recall_at_seconds(per[s]["curve"], results[control][s]["curve"][-1]["seconds"])
             for s in seeds]  # fmt: skip
        )
        reach = [first_reaching(per[s]["curve"], control_final[s]["recall@100"], "negatives")
                 for s in seeds]  # fmt: skip
        reach_text = _reach_text(reach, len(seeds))
        examples = [first_reaching(per[s]["curve"], control_final[s]["recall@100"], "examples")
                    for s in seeds]  # fmt: skip
        examples_text = _reach_text(examples, len(seeds))
        lines.append(
            f"{run:28s} {cells[0]:>15s} {cells[1]:>15s} {cells[2]:>15s}  "
            f"{diff.mean():+.4f} [{diff.min():+.4f},{diff.max():+.4f}] "
            f"{diff.mean() / base:+7.1%} {ms:8.1f} {ms / control_ms:6.2f} {at_time:9.4f}"
            f" {own_at_control_time:10.4f}"
            f" {per[seeds[0]]['in_loss']:7.0f} {per[seeds[0]]['scored']:7.0f} {reach_text:>14s}"
            f" {examples_text:>13s}"
        )
    return lines


def _reach_text(values: List[Optional[float]], seeds: int) -> str:
    reached = [v for v in values if v is not None]
    return f"{np.mean(reached):.3g}" if len(reached) == seeds else f"{len(reached)}/{seeds} seeds"


def from_json(paths: List[str]) -> tuple:
    """`(results, runs, arguments)` of earlier `--output_json` files (same control, same
    seeds), merged: the first file's control, then every run of every file once."""
    results: Dict[str, Dict[int, dict]] = {}
    runs: List[str] = []
    arguments = None
    for path in paths:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        arguments = arguments or saved["arguments"]
        for run, per_seed in saved["results"].items():
            if run not in results:
                results[run] = {int(seed): value for seed, value in per_seed.items()}
                runs.append(run)
    return results, runs, arguments


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--movielens_dir", default=None, help="MovieLens folder; else --synthetic")
    p.add_argument("--synthetic_items", type=int, default=0, help="> 0: a synthetic catalogue")
    p.add_argument("--synthetic_users", type=int, default=5000)
    p.add_argument("--synthetic_interactions_per_user", type=float, default=100.0)
    p.add_argument("--runs", default=None, help="comma-separated; the first is the control")
    p.add_argument(
        "--from_json",
        nargs="+",
        default=None,
        help="print the summary of earlier --output_json files (merged) instead of training",
    )
    p.add_argument("--seeds", default="42,1,2")
    p.add_argument("--loss", default="softmax", choices=("softmax", "bpr", "bce"))
    p.add_argument("--item_tower", default="id", choices=protocol.ITEM_TOWERS)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--evals_per_epoch", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=0.1)
    p.add_argument("--embedding_dim", type=int, default=32)
    p.add_argument("--cache_refresh", type=int, default=256, help="cache rows refreshed per step")
    p.add_argument("--output_json", default=None)
    return p


def load(args, seed: int):
    synthetic = SyntheticConfig(
        num_users=args.synthetic_users,
        num_items=max(args.synthetic_items, 2),
        interactions_per_user=args.synthetic_interactions_per_user,
        seed=0,
    )
    dataset = "synthetic" if args.synthetic_items > 0 else None
    interactions = load_interactions(dataset, args.movielens_dir, synthetic)
    split = split_interactions(interactions.users, interactions.items, seed)
    genres = None
    if args.item_tower != "id":
        namespace = SimpleNamespace(config="100k-ratings", movielens_dir=args.movielens_dir)
        genres = protocol.title_genres(namespace, split.items)
    return interactions.source, split, genres


def main(argv: Optional[List[str]] = None) -> None:
    args = parser().parse_args(argv)
    if args.from_json:
        results, runs, saved = from_json(args.from_json)
        print(f"batch {saved['batch_size']}, {saved['epochs']} epochs, loss {saved['loss']}, "
              f"item tower {saved['item_tower']}")  # fmt: skip
        print("\n".join(summarise(results, runs)))
        return
    if not args.runs:
        raise SystemExit("--runs is required (or --from_json)")
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    specs = [parse_run(r) for r in runs]
    seeds = [int(s) for s in args.seeds.split(",")]
    results: Dict[str, Dict[int, dict]] = {r: {} for r in runs}
    for seed in seeds:
        source, split, genres = load(args, seed)
        print(f"seed {seed}: {source}, {len(split.items)} items, {len(split.train_users)} train")
        initial = None
        for spec in specs:
            result = train_run(spec, split, seed, args, genres, initial)
            initial = result.pop("start") if initial is None else initial
            result.pop("start", None)
            results[spec.name][seed] = result
            last = result["curve"][-1]
            print(
                f"  {spec.name:28s} R@100 {last['recall@100']:.4f} head "
                f"{last['head_recall@100']:.4f} tail {last['tail_recall@100']:.4f} "
                f"{result['step_ms']:.1f} ms/step",
                flush=True,
            )
    print(f"\n{source}: batch {args.batch_size}, {args.epochs} epochs, loss {args.loss}, "
          f"item tower {args.item_tower}")  # fmt: skip
    print("\n".join(summarise(results, runs)))
    if args.output_json:
        with open(args.output_json, "w", encoding="utf-8") as f:
            json.dump({"arguments": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
