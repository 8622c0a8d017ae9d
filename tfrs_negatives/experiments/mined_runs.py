"""What a run with a mined source adds to training and to its results.

`mining_callbacks` re-mines the run's table from the model being trained
(`RefreshHardNegatives`) and holds the mined count to a schedule
(`NegativeCurriculum`); `mining_results` reads back the refreshes, their timings,
the fallbacks and the false-negative rate of the final table; `print_mining`
prints them for every mined run.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from tfrs_negatives import callbacks
from tfrs_negatives.experiments.splits import Split
from tfrs_negatives.experiments.strategies import Mining
from tfrs_negatives.mining import KnownPositives, false_negative_rate_by_rank

import tensorflow as tf

NO_MINING = {
    "refreshes": 0.0,
    "refresh_seconds": 0.0,
    "refresh_failures": 0.0,
    "fallbacks": float("nan"),
    "mined_count_final": float("nan"),
    "false_negative_rate": float("nan"),
}
"""The mining columns of a run without a mined source."""


def mining_callbacks(
    mining: Optional[Mining],
    model: tf.keras.Model,
    schedule: Sequence[Tuple[float, float]],
    every_n_steps: Optional[int] = None,
) -> Tuple[Optional[callbacks.RefreshHardNegatives], List[tf.keras.callbacks.Callback]]:
    """`(refresh, [refresh, curriculum])` of a mined run; `(None, [])` without mining.

    Args:
      mining: The run's mined source, table and miner, or None.
      model: The model being trained (`query_tower`, `item_tower`).
      schedule: `(step, count)` points of the mined count (`warmup_schedule`).
      every_n_steps: Re-mine every N steps as well as every epoch.
    """
    if mining is None:
        return None, []
    refresh = callbacks.RefreshHardNegatives(
        mining.miner,
        mining.table,
        model.item_tower,
        query_tower=model.query_tower if mining.source.side == "query" else None,
        excluded=mining.excluded,
        every_n_epochs=1,
        every_n_steps=every_n_steps,
    )
    curriculum = callbacks.NegativeCurriculum({mining.source: {"count": list(schedule)}})
    return refresh, [refresh, curriculum]


def mining_results(
    mining: Mining,
    refresh: callbacks.RefreshHardNegatives,
    split: Split,
    held_out: KnownPositives,
) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """`(columns, details)` of a trained mined run.

    Args:
      mining: The run's mined source, table and miner.
      refresh: Its refresh callback (timings, failures, empty anchors).
      split: The train/test split.
      held_out: The test (user, title) pairs: a mined negative among them is a
        false negative (the rate is a lower bound).

    Returns:
      The `NO_MINING` columns with this run's values, and the details written to
      JSON (side, window, every refresh's timing, anchors with no admissible entry).
    """
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
    columns = {
        "refreshes": float(mining.table.refreshes.numpy()),
        "refresh_seconds": float(sum(refresh.timings)),
        "refresh_failures": float(refresh.failures),
        "fallbacks": float(mining.source.fallbacks.numpy()),
        "mined_count_final": float(mining.source.active_count.numpy()),
        "false_negative_rate": rate["rate"],
    }
    details = {
        "side": side,
        "window": [mining.miner.min_rank, mining.miner.max_rank],
        "refresh_timings": list(refresh.timings),
        "empty_anchors": list(refresh.empty_anchors),
        "mined_for_false_negative_rate": rate["mined"],
    }
    return columns, details


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
