"""`tfrs-negatives compare`: train negative-sampling strategies side by side and compare them.

Every strategy trains the same two towers (the TFRS retrieval tutorial's ID towers)
from the same initial weights with the same budget, then is evaluated by exact
recall@k over the whole catalogue, overall and for head and tail items. The command
prints a table and a diagnosis computed from the figures, and writes
`results.json`, `results.csv` and `recall.png` (recall by popularity group per
strategy; head vs tail) to `--output_dir`.

Data: tfds MovieLens (`--dataset movielens/100k-ratings`, the default), a local
unzipped MovieLens folder (`--movielens_dir`: ml-100k, ml-1m or a CSV release, told
from its files), or the built-in synthetic log
(`--dataset synthetic`). When tfds has no copy on disk and cannot download, the
command says so, names the two ways to get MovieLens and runs on synthetic data,
labelled as such in every output.
"""

import argparse
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from tfrs_negatives.beam import cli as beam_cli
from tfrs_negatives.experiments import distribution
from tfrs_negatives.experiments.datasets import load_interactions
from tfrs_negatives.experiments.report import (
    diagnose,
    diagnostics_rows,
    draw,
    format_table,
    table_rows,
    write_csv,
    write_json,
)
from tfrs_negatives.experiments.splits import split_interactions, training_batches
from tfrs_negatives.experiments.strategies import (
    DEFAULT_STRATEGIES,
    MINERS,
    STRATEGIES,
    StrategyOptions,
    chosen,
    make_strategy,
    parse_mix,
    parse_window,
)
from tfrs_negatives.experiments.synthetic import SyntheticConfig
from tfrs_negatives.experiments.training import RunResult, TrainingOptions, train_and_evaluate


class UsageError(ValueError):
    """A user error: reported as one line and exit status 2, never a traceback."""


def parser() -> argparse.ArgumentParser:
    """The command's flags."""
    p = argparse.ArgumentParser(
        prog="tfrs-negatives compare",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default=None,
        help="movielens/<config> (tfds names, e.g. movielens/1m-ratings) or 'synthetic'; "
        "default: the release --movielens_dir holds, else movielens/100k-ratings",
    )
    data.add_argument(
        "--movielens_dir",
        default=None,
        help="unzipped MovieLens folder (ml-100k, ml-1m, or a CSV release such as "
        "ml-latest-small or ml-32m; told from its files), instead of tfds",
    )
    data.add_argument("--synthetic_users", type=int, default=1000)
    data.add_argument("--synthetic_items", type=int, default=1700)
    data.add_argument("--synthetic_interactions_per_user", type=float, default=100.0)
    data.add_argument("--synthetic_zipf", type=float, default=1.0)
    data.add_argument("--synthetic_seed", type=int, default=0)
    runs = p.add_argument_group("strategies")
    runs.add_argument(
        "--strategies",
        default=",".join(DEFAULT_STRATEGIES),
        help=f"comma-separated, of {list(STRATEGIES)}",
    )
    runs.add_argument(
        "--mix",
        default=None,
        help="a custom mix of sources, e.g. inbatch=1,uniform=0.9,hard=0.1 "
        "(adds the 'mix' strategy)",
    )
    runs.add_argument(
        "--num_negatives",
        type=int,
        default=1024,
        help="sampled negatives per step (a mix divides this budget)",
    )
    runs.add_argument("--hard_count", type=int, default=8, help="mined negatives per example")
    runs.add_argument("--hard_window", default="10,100", help="ranks lo,hi mined by 'hard'")
    runs.add_argument("--hardest_window", default="0,10", help="ranks lo,hi of 'hardest'")
    runs.add_argument("--miner", choices=MINERS, default="brute")
    runs.add_argument(
        "--full_softmax_max_items",
        type=int,
        default=50000,
        help="skip full_softmax above this catalogue size",
    )
    budget = p.add_argument_group("training (the TFRS tutorial's budget)")
    budget.add_argument("--epochs", type=int, default=3)
    budget.add_argument("--batch_size", type=int, default=8192)
    budget.add_argument("--learning_rate", type=float, default=0.1)
    budget.add_argument("--embedding_dim", type=int, default=32)
    budget.add_argument("--ks", default="10,50,100")
    budget.add_argument("--seed", type=int, default=42)
    budget.add_argument(
        "--exclude_seen",
        action="store_true",
        help="leave each user's training items out of its test rankings (the usual "
        "recommender protocol; the TFRS tutorial, and the default, keep them)",
    )
    distribution.add_distribution_flags(p)
    out = p.add_argument_group("output")
    out.add_argument("--output_dir", default="tfrs_negatives_compare")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _window(text: str, flag: str) -> Tuple[int, int]:
    try:
        return parse_window(text, flag)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if not value > 0:
            raise UsageError(f"--{name} must be > 0, got {value}")


def _ks(text: str) -> List[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise UsageError(f"--ks must be comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise UsageError(f"--ks must be integers >= 1, got {text!r}")
    return ks


def _output_dir(path: str) -> str:
    """Creates `path` and checks it is writable before any training."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write_test")
        with open(probe, "w", encoding="utf-8") as f:
            f.write("")
        os.remove(probe)
    except OSError as err:
        raise UsageError(f"--output_dir {path!r} is not writable: {err.strerror or err}") from None
    return path


def run(argv: Optional[Sequence[str]] = None) -> Dict[str, RunResult]:
    """Runs the comparison; returns `{strategy: RunResult}`. Raises UsageError on bad input."""
    args = parser().parse_args(argv)
    names, strategy_options, ks = _checked_flags(args)
    replicas = _distribution(args, names)  # before any TF op: it may split the CPU
    output_dir = _output_dir(args.output_dir)
    interactions, split = _loaded_split(args, ks)
    label = interactions.source + (" [SYNTHETIC DATA]" if interactions.synthetic else "")
    print(
        f"data: {label}; {len(split.train_users)} train / {len(split.test_users)} test "
        f"interactions, {len(split.users)} users, {len(split.items)} items "
        f"({int(split.head.sum())} head items hold half the training interactions)"
    )
    start = time.perf_counter()
    with distribution.scope(replicas):
        strategies = _strategies(names, split, strategy_options, args.full_softmax_max_items)
        results = _train_all(strategies, split, args, ks, replicas)
    elapsed = time.perf_counter() - start
    diagnosis = diagnose(results, max(ks))
    _print_report(results, diagnosis, ks, args, f"{label}, {elapsed:.0f} s in all")
    header = {
        "dataset": interactions.source,
        "synthetic": interactions.synthetic,
        "notice": interactions.notice,
        "num_users": int(len(split.users)),
        "num_items": int(len(split.items)),
        "num_train": int(len(split.train_users)),
        "num_test": int(len(split.test_users)),
        "arguments": vars(args),
        "distribution": distribution.describe(replicas, args),
        "seconds": elapsed,
    }
    if distribution.is_chief(replicas):
        _write_outputs(output_dir, header, results, diagnosis, max(ks))
    else:
        print("\nthis worker is not the chief: the chief (worker 0) writes the outputs")
    return results


def _distribution(args: argparse.Namespace, names: List[str]):
    """The `tf.distribute` strategy of `--distribution` (None: none), or a UsageError."""
    try:
        replicas = distribution.strategy_from_flags(args)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if replicas is not None:
        print(f"distribution: {distribution.describe(replicas, args)}")
        if "inbatch" in names and replicas.num_replicas_in_sync > 1:
            print(
                "note: 'inbatch' is TFRS's own Retrieval task: its in-batch negatives are "
                "each replica's slice of the batch",
                file=sys.stderr,
            )
    return replicas


def _checked_flags(args: argparse.Namespace) -> Tuple[List[str], StrategyOptions, List[int]]:
    """`(strategy names, StrategyOptions, ks)` from the flags, or a UsageError."""
    try:
        names = chosen(args.strategies, args.mix)
        mix = parse_mix(args.mix) if args.mix else None
    except ValueError as err:
        raise UsageError(str(err)) from None
    _positive(
        args,
        "epochs",
        "batch_size",
        "learning_rate",
        "embedding_dim",
        "num_negatives",
        "hard_count",
    )
    options = StrategyOptions(
        num_negatives=args.num_negatives,
        hard_count=args.hard_count,
        hard_window=_window(args.hard_window, "--hard_window"),
        hardest_window=_window(args.hardest_window, "--hardest_window"),
        miner=args.miner,
        mix=mix,
        progress=not args.quiet,
        cross_replica_negatives=False if args.per_replica_negatives else None,
    )
    return names, options, _ks(args.ks)


def _loaded_split(args: argparse.Namespace, ks: List[int]):
    """`(interactions, split)` of the chosen data, or a UsageError."""
    synthetic = SyntheticConfig(
        num_users=args.synthetic_users,
        num_items=args.synthetic_items,
        interactions_per_user=args.synthetic_interactions_per_user,
        zipf=args.synthetic_zipf,
        seed=args.synthetic_seed,
    )
    try:
        interactions = load_interactions(args.dataset, args.movielens_dir, synthetic)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    if interactions.notice:
        print(f"note: {interactions.notice}", file=sys.stderr)
    try:
        split = split_interactions(interactions.users, interactions.items, args.seed)
    except ValueError as err:
        raise UsageError(f"{interactions.source}: {err}") from None
    if max(ks) > len(split.items):
        raise UsageError(f"--ks: k={max(ks)} exceeds the catalogue of {len(split.items)} items")
    return interactions, split


def _strategies(names: List[str], split, options: StrategyOptions, full_softmax_max: int) -> list:
    """Every strategy's task, built (and checked) before any training."""
    if "full_softmax" in names and len(split.items) > full_softmax_max:
        print(
            f"note: skipping full_softmax: {len(split.items)} items exceed "
            f"--full_softmax_max_items {full_softmax_max}",
            file=sys.stderr,
        )
        names = [name for name in names if name != "full_softmax"]
    strategies = []
    for name in names:
        try:
            strategies.append(make_strategy(name, split, options))
        except ValueError as err:
            raise UsageError(f"{name}: {err}") from None
    return strategies


def _training_options(args: argparse.Namespace, ks: List[int]) -> TrainingOptions:
    return TrainingOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        embedding_dim=args.embedding_dim,
        ks=ks,
        # Mined negatives start after a warm-up and ramp up over as long again: a
        # third of the run each, at most an epoch each (so even a one-epoch run mines).
        hard_warmup_epochs=min(1.0, args.epochs / 3),
        hard_ramp_epochs=min(1.0, args.epochs / 3),
        # Progress bars on a terminal, one line per epoch in logs.
        verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2),
        seed=args.seed,
        exclude_seen=args.exclude_seen,
    )


def _train_all(
    strategies: list, split, args: argparse.Namespace, ks: List[int], replicas=None
) -> dict:
    """Trains and evaluates every strategy from the same initial weights; `replicas` is
    the `tf.distribute` strategy they train under (None: none)."""
    options = _training_options(args, ks)
    train = distribution.distributed(
        training_batches(split.train_users, split.train_items, args.batch_size, args.seed),
        replicas,
    )
    results: Dict[str, RunResult] = {}
    trained = []
    initial = None
    for i, strategy in enumerate(strategies):
        counts = ", ".join(
            f"{source} {'B-1' if n < 0 else n}" for source, n in strategy.counts.items()
        )
        print(f"[{i + 1}/{len(strategies)}] {strategy.name}: negatives per example: {counts}")
        result, initial, model = train_and_evaluate(strategy, split, train, options, initial)
        results[strategy.name] = result
        # Every run's model stays alive until the end: a later run's objects must not
        # reuse a freed one's id (autograph caches converted methods by object).
        trained.append(model)
    return results


def _print_report(results: dict, diagnosis: list, ks: List[int], args, title: str) -> None:
    """The table, the negatives' table and the diagnosis; `title` is `"<label>, <n> s in all"`."""
    print()
    protocol = ", training items excluded from rankings" if args.exclude_seen else ""
    label, seconds = title.rsplit(", ", 1)
    if args.distribution != "none":
        protocol += f", {args.distribution}"
    print(f"{label}, {args.epochs} epochs, batch {args.batch_size}{protocol}, {seconds}")
    print(format_table(table_rows(results, ks)))
    negative_rows = diagnostics_rows(results)
    if negative_rows:
        print("\nNegatives (last epoch, per step):")
        print(format_table(negative_rows))
    print("\nDiagnosis:")
    for line in diagnosis:
        print(f"- {line}")


def _write_outputs(output_dir: str, header: dict, results: dict, diagnosis: list, k: int):
    """results.json, results.csv and recall.png (recall@`k` by decile) in `output_dir`."""
    paths = {
        name: os.path.join(output_dir, name)
        for name in ("results.json", "results.csv", "recall.png")
    }
    write_json(paths["results.json"], header, results, diagnosis)
    write_csv(paths["results.csv"], results)
    label = header["dataset"] + (" [SYNTHETIC DATA]" if header["synthetic"] else "")
    draw(paths["recall.png"], results, k, f"{label}: {', '.join(results)}")
    print("\nwrote " + ", ".join(paths.values()))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `tfrs-negatives` / `python -m tfrs_negatives`: `compare` and the Beam steps.

    The Beam steps are `beam.cli.COMMANDS` (`embed`, `count`, `mine`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in beam_cli.COMMANDS:
        print("wrote " + beam_cli.run(argv[0], argv[1:]))
        return 0
    if argv and argv[0] == "compare":
        argv = argv[1:]
    elif argv and not argv[0].startswith("-"):
        print(
            f"error: unknown command {argv[0]!r}; the commands are 'compare', "
            f"{', '.join(repr(c) for c in beam_cli.COMMANDS)} (tfrs-negatives compare --help)",
            file=sys.stderr,
        )
        return 2
    try:
        run(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def main_exit() -> None:
    """The console script: `main()` as the process's exit status."""
    sys.exit(main())
