"""Trains one strategy on a split and measures it: recall, step time, mining, diagnostics."""

import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from tfrs_negatives.callbacks import NegativeCurriculum, RefreshHardNegatives
from tfrs_negatives.evaluation import (
    popularity_groups,
    recall_by_group,
    recall_from_ranks,
    seen_items,
    true_item_ranks,
)
from tfrs_negatives.experiments.model import TwoTowerModel, build, set_tower_weights, tower_weights
from tfrs_negatives.experiments.splits import Split
from tfrs_negatives.experiments.strategies import Strategy, warmup_schedule
from tfrs_negatives.metrics import negative_diagnostics_from_logs
from tfrs_negatives.mining import KnownPositives, false_negative_rate_by_rank

import numpy as np
import tensorflow as tf


@dataclass
class TrainingOptions:
    """The budget every strategy gets (the TFRS tutorial's by default).

    Attributes:
      epochs: Passes over the training split.
      batch_size: Examples per step.
      learning_rate: Adagrad's learning rate.
      embedding_dim: Tower output dimension.
      ks: Recall cut-offs.
      num_groups: Popularity groups of the by-decile recall.
      hard_warmup_epochs: Epochs without mined negatives.
      hard_ramp_epochs: Epochs over which their count ramps up.
      verbose: Keras progress bars (1) or none (0).
      seed: Seed of initial weights and shuffling.
      exclude_seen: Leave the items each user saw in training out of its test
        rankings (the usual recommender protocol; the TFRS tutorial keeps them).
    """

    epochs: int = 3
    batch_size: int = 8192
    learning_rate: float = 0.1
    embedding_dim: int = 32
    ks: Sequence[int] = (10, 50, 100)
    num_groups: int = 10
    hard_warmup_epochs: float = 1.0
    hard_ramp_epochs: float = 1.0
    verbose: int = 1
    seed: int = 42
    exclude_seen: bool = False


class StepTimer(tf.keras.callbacks.Callback):
    """Wall time of every training step (the first `skip` steps are compilation)."""

    def __init__(self, skip: int = 2) -> None:
        super().__init__()
        self.skip = skip
        self.times: List[float] = []
        self._start = 0.0

    def on_train_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self.times.append(time.perf_counter() - self._start)

    @property
    def median_ms(self) -> float:
        """Median step time in ms after the first `skip` steps (NaN without any)."""
        kept = self.times[self.skip :] or self.times
        return float(np.median(kept) * 1e3) if kept else float("nan")


@dataclass
class RunResult:
    """What one strategy measured.

    Attributes:
      metrics: Flat `{name: number}`: recall@k overall/head/tail, step time, loss,
        and for mined runs refreshes and the false-negative rate.
      recall_by_group: `[num_groups]` recall@max(k) by popularity group (0 = most popular).
      logs: The last epoch's Keras logs (loss and diagnostics metrics).
      counts: Negatives per source (-1: the batch's other positives).
      diagnostics: The last epoch's negative diagnostics, `{source: {statistic:
        value}}` (`tfrs_negatives.metrics.negative_diagnostics_from_logs`).
    """

    metrics: Dict[str, float]
    recall_by_group: List[float]
    logs: Dict[str, float] = field(default_factory=dict)
    counts: Dict[str, int] = field(default_factory=dict)
    diagnostics: Dict[str, Dict[str, float]] = field(default_factory=dict)


def train_and_evaluate(
    strategy: Strategy,
    split: Split,
    train: tf.data.Dataset,
    options: TrainingOptions,
    initial_weights: Optional[List[np.ndarray]] = None,
) -> tuple:
    """Trains `strategy` and evaluates it on the test split.

    Args:
      strategy: The task (and mined source) to train with.
      split: Data and vocabularies.
      train: Batches of `{"user_id", "movie_title"}` (`training_batches`).
      options: The shared budget.
      initial_weights: Tower weights to start from (so runs start alike).

    Returns:
      `(RunResult, tower_weights_before_training, model)`.
    """
    tf.keras.utils.set_random_seed(options.seed)
    model = TwoTowerModel(split.users, split.items, strategy.task, options.embedding_dim)
    build(model, split.users, split.items)
    if initial_weights is not None:
        set_tower_weights(model, initial_weights)
    start_weights = tower_weights(model)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(options.learning_rate))
    timer = StepTimer()
    callbacks: List[tf.keras.callbacks.Callback] = [timer]
    refresh = None
    if strategy.mining is not None:
        mining = strategy.mining
        refresh = RefreshHardNegatives(
            mining.miner, mining.table, model.item_tower, every_n_epochs=1
        )
        steps = math.ceil(len(split.train_users) / options.batch_size)
        schedule = warmup_schedule(
            mining.source.count, steps, options.hard_warmup_epochs, options.hard_ramp_epochs
        )
        callbacks += [refresh, NegativeCurriculum({mining.source: {"count": schedule}})]
    start = time.perf_counter()
    history = model.fit(train, epochs=options.epochs, verbose=options.verbose, callbacks=callbacks)
    seconds = time.perf_counter() - start

    queries = model.query_tower(tf.constant(split.test_users)).numpy()
    items = model.item_tower(tf.constant(split.items)).numpy()
    excluded = None
    if options.exclude_seen:
        excluded = seen_items(split.test_users, split.train_users, split.train_index)
    ranks = true_item_ranks(queries, items, split.test_index, excluded=excluded)
    metrics: Dict[str, Any] = dict(
        recall_from_ranks(ranks, split.test_index, options.ks, split.head)
    )
    groups = popularity_groups(split.train_counts, options.num_groups)
    by_group = recall_by_group(ranks, groups[split.test_index], max(options.ks), options.num_groups)
    logs = {k: float(v[-1]) for k, v in history.history.items() if v}
    logs.update(_diagnostic_results(model))
    metrics.update(
        final_loss=logs.get("loss", float("nan")),
        step_ms=timer.median_ms,
        train_seconds=seconds,
    )
    if strategy.mining is not None:
        metrics.update(_mining_metrics(strategy, split, refresh))
    return (
        RunResult(
            metrics,
            [float(v) for v in by_group],
            logs,
            strategy.counts,
            negative_diagnostics_from_logs(logs),
        ),
        start_weights,
        model,
    )


def _diagnostic_results(model: tf.keras.Model) -> Dict[str, float]:
    """The last epoch's `negatives/...` metrics, read from the metrics themselves.

    Under `MultiWorkerMirroredStrategy` Keras (tf-keras 2.20, `reduce_per_replica`) sums
    every logged value over the workers: right for the loss (each worker's share of
    the sum), but a metric's result is already global, so its logged value is
    multiplied by the number of workers. Read after `fit`, in every worker alike, a
    metric gives its value once.
    """
    return {
        metric.name: float(metric.result())
        for metric in model.metrics
        if metric.name.startswith("negatives/")
    }


def _mining_metrics(strategy: Strategy, split: Split, refresh: RefreshHardNegatives) -> dict:
    """Refreshes, their time, fallbacks and the held-out false-negative rate of the window."""
    mining = strategy.mining
    held_out = KnownPositives(split.test_users, split.test_items)
    lo, hi = mining.miner.min_rank, mining.miner.max_rank
    rate = false_negative_rate_by_rank(
        mining.table,
        mining.source.catalogue,
        split.train_items,
        split.train_users,
        held_out,
        lo,
        [lo, hi],
    )[0]
    return {
        "refreshes": float(mining.table.refreshes.numpy()),
        "refresh_seconds": float(sum(refresh.timings)),
        "refresh_failures": float(refresh.failures),
        "fallbacks": float(mining.source.fallbacks.numpy()),
        "mined_count_final": float(mining.source.active_count.numpy()),
        "false_negative_rate": float(rate["rate"]),
    }
