"""Per-source negative diagnostics of `CorrectedRetrieval`, as Keras metrics, and their parser.

The task (`CorrectedRetrieval(diagnostics=True)`, the default) measures in every
training step, for each of its negative sources, four statistics; each is a Keras
metric named `negatives/<source>/<statistic>`, where `<source>` is the source
layer's `name` (`in_batch`, `uniform`, `uniform_1`, `popularity`, `mined`, ...):

* `mass`: softmax probability mass the source's candidates take in the corrected,
  masked logits, summed over each row's columns of that source and averaged over
  rows. With the softmax loss the gradient of a row's loss with respect to a
  negative's logit is its probability, so `mass` is the share of the gradient signal
  the source carries; the masses of all sources plus `negatives/positive/mass` sum
  to 1.
* `gap`: mean of `s(q_i, c_i) - s(q_i, c_j)` over the source's unmasked negatives
  `j` of every row `i`, on the raw scores (dot products, before the temperature and
  the log-Q correction, so sources are compared on the model's own scale). Small or
  negative: the source's negatives score as high as the positives (hard, or false
  negatives); large: they are easy and carry little signal.
* `masked`: share of the source's (row, candidate) entries masked: accidental hits
  (the row's positive drawn again), later copies of a candidate (`duplicates="mask"`),
  the query's known positives and margin filter (mined), and every entry of a source
  at weight 0. A draw beyond the source's `active_count` is no entry.
* `distinct`: number of distinct candidate ids the source contributed in the step
  (among the batch's candidates for `in_batch`, its active draws for a sampled
  source, all rows' mined candidates for a mined one).

and `negatives/positive/mass`, the mean softmax probability of each row's positive.

`mass`, `gap` and `masked` are measured on every `diagnostics_stride`-th row of the
batch (32 by default; 1 for every row), unweighted by `sample_weight`. Under a
`tf.distribute` strategy each replica measures its own rows and weighs its figures by
its share of the step's measured rows, so a step counts once, as on one device. Each
metric is the mean over the steps since Keras last reset it (the epoch in `fit`, as for
`loss`): progress bars and per-batch TensorBoard logs show the running mean,
`History` the epoch's mean. A metric not updated since the reset reports NaN: the
statistics are not computed when the task is called with `training=False`, so
`evaluate` and the `val_` keys of `fit` report NaN for them. A statistic measured
in a step where it has nothing to average (the `gap` and `masked` of a source whose
count a curriculum holds at 0) does not count in the mean; a metric with only such
steps reports 0, not NaN.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

#: First component of every diagnostic metric name.
PREFIX = "negatives"
#: Statistics measured for each source, in the order of the metrics.
STATISTICS = ("mass", "gap", "masked", "distinct")
#: Pseudo-source holding the positives' softmax mass (`negatives/positive/mass`).
POSITIVE = "positive"


def diagnostic_name(source: str, statistic: str) -> str:
    """The metric name of `statistic` of `source`: `negatives/<source>/<statistic>`."""
    return f"{PREFIX}/{source}/{statistic}"


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class DiagnosticMean(tf.keras.metrics.Mean):
    """Weighted mean of the values given since the last reset.

    NaN before the first update (not measured in this phase, e.g. `evaluate`);
    once updated, 0 while every update had weight 0 (measured, but nothing to
    measure: e.g. the `gap` of a source a curriculum holds at count 0), never NaN.
    """

    def __init__(self, name: str = "mean", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)
        self.calls = self.add_weight(name="calls", initializer="zeros")

    def update_state(self, values: Any, sample_weight: Any = None) -> Any:
        update = super().update_state(values, sample_weight=sample_weight)
        with tf.control_dependencies([update] if update is not None else []):
            return self.calls.assign_add(1.0)

    def result(self) -> tf.Tensor:
        return tf.where(
            self.calls > 0,
            tf.math.divide_no_nan(self.total, self.count),
            tf.constant(np.nan, self.dtype),
        )


class NegativeDiagnostics:
    """The diagnostic metrics of a task's negative sources and their per-step update.

    Args:
      source_names: Names of the task's sources, in order; distinct, and none
        equal to `POSITIVE`.

    Attributes:
      metrics: `DiagnosticMean` metrics: `mass`, `gap`, `masked`, `distinct` of each
        source in order, then `negatives/positive/mass`.
    """

    def __init__(self, source_names: Sequence[str]) -> None:
        names = list(source_names)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                "The negative sources need distinct names for their diagnostic metrics "
                f"(`negatives/<name>/mass`, ...), got {names} (repeated: {repeated}): give "
                "each source its own `name=`, or pass `diagnostics=False`."
            )
        if POSITIVE in names:
            raise ValueError(
                f"A negative source is named {POSITIVE!r}, the name the diagnostics reserve "
                "for the positives (`negatives/positive/mass`): rename the source."
            )
        self.source_names = names
        self.metrics: List[tf.keras.metrics.Metric] = [
            DiagnosticMean(name=diagnostic_name(source, statistic))
            for source in names
            for statistic in STATISTICS
        ]
        self.metrics.append(DiagnosticMean(name=diagnostic_name(POSITIVE, "mass")))

    def update_state(
        self,
        statistics: Any,
        distinct: Sequence[Optional[tf.Tensor]],
        gap_scale: Optional[float] = None,
    ) -> list:
        """Adds one step's statistics to the metrics.

        Args:
          statistics: The step's `tfrs_negatives.ops.diagnostics.NegativeStatistics`,
            one entry per source in order.
          distinct: Per source, the scalar number of distinct candidates, or None
            when unknown (the metric is then not updated).
          gap_scale: Factor bringing the gaps to the raw scores' scale (the task's
            temperature, when the statistics were measured on tempered scores).

        Returns:
          The update ops.
        """
        gap = statistics.gap if gap_scale is None else statistics.gap * gap_scale
        # Under tf.distribute each replica weighs its statistics by its share of the
        # step's measured rows, so a step counts once however many replicas share it
        # (an empty share of a small last batch counts not at all).
        share = _row_share(statistics.rows)
        updates = []
        for k in range(len(self.source_names)):
            mass, gap_metric, masked, distinct_metric = self.metrics[4 * k : 4 * k + 4]
            has_entries = tf.cast(statistics.entries[k] > 0, tf.float32)
            updates.append(mass.update_state(_finite(statistics.mass[k]), sample_weight=share))
            # A step where the source has no unmasked entry has no gap: it does not count.
            has_valid = tf.cast(statistics.valid[k] > 0, tf.float32)
            updates.append(gap_metric.update_state(gap[k], sample_weight=share * has_valid))
            updates.append(
                masked.update_state(statistics.masked[k], sample_weight=share * has_entries)
            )
            if distinct[k] is not None:
                updates.append(
                    distinct_metric.update_state(
                        tf.cast(distinct[k], tf.float32), sample_weight=share
                    )
                )
        positive_mass = _finite(statistics.positive_mass)
        updates.append(self.metrics[-1].update_state(positive_mass, sample_weight=share))
        return updates


def _row_share(rows: tf.Tensor) -> tf.Tensor:
    """This replica's share of the step's measured rows: 1 on one device (0 without rows)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return tf.cast(rows > 0, tf.float32)
    return tf.math.divide_no_nan(rows, context.all_reduce(tf.distribute.ReduceOp.SUM, rows))


def _finite(value: tf.Tensor) -> tf.Tensor:
    """`value` with NaN as 0 (a mean over no rows, which then counts with weight 0)."""
    return tf.where(tf.math.is_nan(value), tf.zeros_like(value), value)


def negative_diagnostics_from_logs(
    logs: Any, prefix: str = "", epoch: int = -1
) -> Dict[str, Dict[str, float]]:
    """Parses Keras logs back into `{source: {statistic: value}}`.

    The contract (stable; `tfrs-negatives compare` builds its diagnostics table with
    it):

    * `logs` is a dict of metric name to value as Keras gives it: the logs of a
      callback or of `model.evaluate(..., return_dict=True)` (scalars),
      `History.history` (a list per key, one value per epoch; `epoch` picks one,
      the last by default), or a `tf.keras.callbacks.History` itself.
    * Keys `<prefix>negatives/<source>/<statistic>` with `<statistic>` in
      `STATISTICS` are kept (`prefix="val_"` reads the validation keys of `fit`);
      every other key is ignored.
    * The result maps each source name, in the order of first appearance in `logs`
      (the task's order of sources), to a dict of its statistics present in `logs`
      as Python floats (NaN where Keras logged NaN: not measured in that phase).
      The positives' share is under the source `POSITIVE` (`"positive"`), as
      `{"mass": ...}`, last.
    * No diagnostic key gives `{}`.

    Args:
      logs: Keras logs, a `History.history` dict, or a `History`.
      prefix: Prefix Keras put before the metric names (`""`, or `"val_"`).
      epoch: Index of the epoch to read where values are per-epoch lists.

    Returns:
      `{source: {statistic: float}}`, e.g. `{"in_batch": {"mass": 0.61, "gap": 2.3,
      "masked": 0.004, "distinct": 3714.0}, "uniform": {...}, "positive": {"mass":
      0.12}}`.
    """
    if hasattr(logs, "history") and isinstance(logs.history, Mapping):
        logs = logs.history
    if not isinstance(logs, Mapping):
        raise TypeError(
            "`logs` must be a dict of Keras logs (or History.history, or a History), "
            f"got {type(logs).__name__}."
        )
    start = f"{prefix}{PREFIX}/"
    parsed: Dict[str, Dict[str, float]] = {}
    positive = None
    for key, value in logs.items():
        if not isinstance(key, str) or not key.startswith(start):
            continue
        source, _, statistic = key[len(start) :].rpartition("/")
        if not source or statistic not in STATISTICS:
            continue
        number = _as_float(value, epoch, key)
        if source == POSITIVE:
            positive = {statistic: number}
        else:
            parsed.setdefault(source, {})[statistic] = number
    if positive is not None:
        parsed[POSITIVE] = positive
    return parsed


def _as_float(value: Any, epoch: int, key: str) -> float:
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        if len(value) == 0:
            return float("nan")
        try:
            value = value[epoch]
        except IndexError as error:
            raise IndexError(
                f"`epoch` {epoch} is out of range for `{key}`, which holds {len(value)} epochs."
            ) from error
    return float(np.asarray(value))
