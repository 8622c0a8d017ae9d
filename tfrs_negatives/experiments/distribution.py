"""The `--distribution` flags of the compare command and the examples: which strategy trains.

* `none` (the default): no strategy, TensorFlow's default device placement;
* `one_device`: `OneDeviceStrategy` on the first GPU, else the CPU;
* `mirrored`: `MirroredStrategy` over every local GPU, else every (logical) CPU device;
  `--cpu_devices N` first splits the CPU into N logical devices, so a machine without
  GPUs can run (and test) several replicas;
* `multi_worker`: `MultiWorkerMirroredStrategy`, one process per worker, the cluster
  given by the `TF_CONFIG` environment variable (README, "Distributed training").

Under a strategy `CorrectedRetrieval`'s in-batch negatives are the global batch's;
`--per_replica_negatives` keeps each replica's own slice instead
(`cross_replica_negatives=False`), the cheaper step whose result depends on the
number of replicas. `--batch_size` stays the global batch.
"""

import argparse
import contextlib
import os
from typing import Any, ContextManager, Dict, Optional

import tensorflow as tf

DISTRIBUTIONS = ("none", "one_device", "mirrored", "multi_worker")


def add_distribution_flags(parser: argparse.ArgumentParser) -> None:
    """Adds `--distribution`, `--cpu_devices` and `--per_replica_negatives` to `parser`."""
    group = parser.add_argument_group("distribution (tf.distribute)")
    group.add_argument(
        "--distribution",
        choices=DISTRIBUTIONS,
        default="none",
        help="train under a tf.distribute strategy; multi_worker reads the cluster from "
        "TF_CONFIG (one process per worker); --batch_size is the global batch",
    )
    group.add_argument(
        "--cpu_devices",
        type=int,
        default=0,
        help="with --distribution mirrored: split the CPU into this many logical devices "
        "(one replica each); 0 keeps the devices as found",
    )
    group.add_argument(
        "--per_replica_negatives",
        action="store_true",
        help="in-batch negatives from each replica's slice of the batch (TFRS's behaviour) "
        "instead of the global batch",
    )


def checked_distribution(args: argparse.Namespace) -> None:
    """Raises ValueError for flags that would otherwise be silently ignored."""
    if args.cpu_devices < 0:
        raise ValueError(f"--cpu_devices must be >= 0, got {args.cpu_devices}")
    if args.cpu_devices and args.distribution != "mirrored":
        raise ValueError(
            f"--cpu_devices {args.cpu_devices} splits the CPU into replicas of "
            f"--distribution mirrored, but --distribution is {args.distribution!r}"
        )
    if args.per_replica_negatives and args.distribution in ("none", "one_device"):
        raise ValueError(
            "--per_replica_negatives needs several replicas (--distribution mirrored or "
            f"multi_worker), but --distribution is {args.distribution!r}"
        )
    if args.distribution == "multi_worker" and not os.environ.get("TF_CONFIG"):
        raise ValueError(
            "--distribution multi_worker needs the cluster in the TF_CONFIG environment "
            'variable, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\' on the first '
            "machine (README, 'Distributed training')"
        )


def strategy_from_flags(args: argparse.Namespace) -> Optional[tf.distribute.Strategy]:
    """The strategy the flags ask for (None for `--distribution none`).

    Call it before any TensorFlow operation runs: `--cpu_devices` can only split the
    CPU before TensorFlow initializes its devices.

    Raises:
      ValueError: Flags that contradict each other, a missing `TF_CONFIG`, or
        `--cpu_devices` after TensorFlow has started.
    """
    checked_distribution(args)
    if args.cpu_devices:
        split_cpu(args.cpu_devices)
    if args.distribution == "none":
        return None
    if args.distribution == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if args.distribution == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.MultiWorkerMirroredStrategy()


def split_cpu(num_devices: int) -> None:
    """Splits the first physical CPU into `num_devices` logical devices.

    Raises:
      ValueError: TensorFlow has already initialized its devices with another split.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        found = len(tf.config.list_logical_devices("CPU"))
        if found == num_devices:
            return  # already split this way (e.g. a second run in one process)
        raise ValueError(
            f"--cpu_devices {num_devices}: TensorFlow already started with {found} CPU "
            "device(s) in this process; pass the flag to a new process"
        ) from None


def scope(strategy: Optional[tf.distribute.Strategy]) -> ContextManager[Any]:
    """`strategy.scope()`, or a context that does nothing for no strategy."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def task_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The `CorrectedRetrieval` arguments the flags set (`cross_replica_negatives`)."""
    return {"cross_replica_negatives": False} if args.per_replica_negatives else {}


def distributed(dataset: tf.data.Dataset, strategy: Optional[tf.distribute.Strategy]):
    """`dataset`, with each worker taking its share of every batch under multi-worker.

    The in-memory datasets of the examples have no files to shard, so workers shard
    by data: each global batch is split across the workers' replicas, as on one
    machine (without this option TensorFlow would warn, then do the same).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def is_chief(strategy: Optional[tf.distribute.Strategy]) -> bool:
    """Whether this process writes the outputs (all but multi-worker's other workers)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and int(resolver.task_id) == 0


def describe(strategy: Optional[tf.distribute.Strategy], args: argparse.Namespace) -> str:
    """One line for reports, e.g. `MirroredStrategy, 4 replicas, global in-batch negatives`."""
    if strategy is None:
        return "no strategy"
    replicas = strategy.num_replicas_in_sync
    negatives = "per-replica" if args.per_replica_negatives else "global"
    return (
        f"{_strategy_name(strategy)}, {replicas} replica{'s' if replicas > 1 else ''}, "
        f"{negatives} in-batch negatives"
    )


def _strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public class name (an MWMS instance is a `CollectiveAllReduceStrategy`)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__
