"""`NegativeCurriculum`: change each negative source's count or weight as training goes."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

from tfrs_negatives.negatives.sources import NegativeSource

import numpy as np
import tensorflow as tf

Points = Sequence[Tuple[float, float]]


def interpolate(points: Points, t: float) -> float:
    """Piecewise-linear value of `points` (`[(t, value), ...]`, t increasing) at `t`.

    Constant before the first point and after the last.
    """
    times = [p[0] for p in points]
    values = [p[1] for p in points]
    return float(np.interp(t, times, values))


class NegativeCurriculum(tf.keras.callbacks.Callback):
    """Sets each source's `active_count` and `weight` from piecewise-linear schedules.

    The sources hold these as variables that the task reads inside the training
    step, so a change takes effect on the next step without retracing. A typical
    easy-to-hard curriculum: uniform negatives at full weight from the start, hard
    negatives switched on after a warm-up and ramped up::

        NegativeCurriculum({
            uniform: {"weight": [(0, 1.0), (2000, 0.5)]},
            mined: {"count": [(0, 0), (1000, 0), (3000, 8)]},
        })

    Time is the optimizer's step count (`unit="step"`, survives a restore) or the
    epoch index (`unit="epoch"`).

    Args:
      schedules: `{source: {"count": points, "weight": points}}`; either key may be
        left out. `points` are `(time, value)` pairs with increasing time; counts
        are rounded and must lie in `[0, source.count]`, weights must be >= 0.
      unit: `"step"` or `"epoch"`.
    """

    def __init__(self, schedules: Dict[NegativeSource, Dict[str, Points]], unit: str = "step"):
        super().__init__()
        if unit not in ("step", "epoch"):
            raise ValueError(f"`unit` must be 'step' or 'epoch', got {unit!r}.")
        if not schedules:
            raise ValueError("`schedules` is empty: give at least one source's schedule.")
        self.unit = unit
        self.schedules: List[Tuple[NegativeSource, Dict[str, List[Tuple[float, float]]]]] = []
        for source, schedule in schedules.items():
            self.schedules.append((source, _checked(source, schedule)))
        self.history: List[Dict[str, Any]] = []

    def values_at(self, t: float) -> List[Tuple[NegativeSource, Optional[int], Optional[float]]]:
        """`(source, count or None, weight or None)` of every schedule at time `t`."""
        out = []
        for source, schedule in self.schedules:
            count = schedule.get("count")
            weight = schedule.get("weight")
            out.append(
                (
                    source,
                    None if count is None else int(round(interpolate(count, t))),
                    None if weight is None else interpolate(weight, t),
                )
            )
        return out

    def _apply(self, t: float) -> None:
        record: Dict[str, Any] = {"time": t}
        for source, count, weight in self.values_at(t):
            if count is not None:
                source.active_count.assign(count)
                record[f"{source.name}/count"] = count
            if weight is not None:
                source.weight.assign(weight)
                record[f"{source.name}/weight"] = weight
        # Record changes only (the time alone does not make a new entry).
        if not self.history or {**self.history[-1], "time": t} != record:
            self.history.append(record)

    def on_train_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        if self.unit == "step":
            self._apply(float(self.model.optimizer.iterations.numpy()))

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        if self.unit == "epoch":
            self._apply(float(epoch))


def _checked(source: NegativeSource, schedule: Dict[str, Points]) -> Dict[str, list]:
    if not isinstance(source, NegativeSource):
        raise TypeError(f"`schedules` keys must be negative sources, got {type(source).__name__}.")
    unknown = set(schedule) - {"count", "weight"}
    if unknown:
        raise ValueError(
            f"`schedules[{source.name}]` has unknown keys {sorted(unknown)}; expected 'count' "
            "and/or 'weight'."
        )
    checked = {}
    for key, given in schedule.items():
        points = [(float(t), float(v)) for t, v in given]
        if not points:
            raise ValueError(f"`schedules[{source.name}][{key!r}]` has no points.")
        times = [t for t, _ in points]
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(
                f"`schedules[{source.name}][{key!r}]` times must increase, got {times}."
            )
        values = [v for _, v in points]
        if key == "count":
            if source.in_batch:
                raise ValueError(
                    "InBatch has no count to schedule (its draws are the batch); schedule its "
                    "'weight'."
                )
            if min(values) < 0 or max(values) > source.count:
                raise ValueError(
                    f"`schedules[{source.name}]['count']` values must lie in [0, "
                    f"{source.count}] (the source's count), got {values}."
                )
        elif min(values) < 0 or not np.all(np.isfinite(values)):
            raise ValueError(
                f"`schedules[{source.name}]['weight']` values must be finite and >= 0, got "
                f"{values}."
            )
        checked[key] = points
    return checked
