"""`NegativeCurriculum`: schedules applied between steps, without retracing."""

import tfrs_negatives as tfn
from tfrs_negatives.negatives import InBatch, Uniform

import numpy as np
import pytest
import tensorflow as tf
from tests_support import TwoTower, interactions


def test_interpolate_hand_worked():
    points = [(0, 0.0), (10, 1.0), (20, 1.0)]
    assert tfn.callbacks.interpolate(points, -5) == 0.0
    assert tfn.callbacks.interpolate(points, 2.5) == 0.25
    assert tfn.callbacks.interpolate(points, 30) == 1.0


class _Record(tf.keras.callbacks.Callback):
    """Reads the source variables the step will use (after the curriculum set them)."""

    def __init__(self, source):
        super().__init__()
        self.source, self.seen = source, []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append((int(self.source.active_count.numpy()), float(self.source.weight.numpy())))


def test_step_schedule_sets_variables_each_step_without_retracing():
    uniform = Uniform(np.arange(40), 16, seed=0)
    in_batch = InBatch()
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=128), negatives=[in_batch, uniform]
    )
    model = TwoTower(task)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    curriculum = tfn.callbacks.NegativeCurriculum(
        {
            uniform: {"count": [(0, 0), (4, 16)], "weight": [(0, 1.0), (8, 0.5)]},
            in_batch: {"weight": [(0, 1.0), (8, 0.0)]},
        }
    )
    record = _Record(uniform)
    model.fit(interactions(), epochs=3, verbose=0, callbacks=[curriculum, record])  # 12 steps
    counts = [c for c, _ in record.seen]
    assert counts == [0, 4, 8, 12, 16, 16, 16, 16, 16, 16, 16, 16]
    np.testing.assert_allclose([w for _, w in record.seen][:9], 1.0 - 0.5 * np.arange(9) / 8)
    assert float(in_batch.weight.numpy()) == 0.0
    assert len(curriculum.history) == 9  # steps 0-8 change something; 9-11 repeat step 8
    # No retracing: as many traces as a model trained without a curriculum.
    baseline = TwoTower(
        tfn.CorrectedRetrieval(
            frequency=tfn.StreamingFrequencyEstimator(num_buckets=128),
            negatives=[InBatch(), Uniform(np.arange(40), 16, seed=0)],
        )
    )
    baseline.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    baseline.fit(interactions(), epochs=3, verbose=0)
    assert (
        model.train_function.experimental_get_tracing_count()
        == baseline.train_function.experimental_get_tracing_count()
    )


def test_epoch_schedule():
    uniform = Uniform(np.arange(40), 8, seed=0)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=128), negatives=[InBatch(), uniform]
    )
    model = TwoTower(task)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    curriculum = tfn.callbacks.NegativeCurriculum(
        {uniform: {"count": [(0, 2), (2, 8)]}}, unit="epoch"
    )
    record = _Record(uniform)
    model.fit(interactions(), epochs=3, verbose=0, callbacks=[curriculum, record])
    assert [c for c, _ in record.seen] == [2] * 4 + [5] * 4 + [8] * 4


@pytest.mark.parametrize(
    "schedules, match",
    [
        ({}, "empty"),
        ({"uniform": {"count": [(0, 1)]}}, "keys must be negative sources"),
        (lambda u, b: {u: {"count": [(0, 1), (0, 2)]}}, "times must increase"),
        (lambda u, b: {u: {"count": [(0, 17)]}}, r"\[0, 16\]"),
        (lambda u, b: {u: {"weight": [(0, -1.0)]}}, ">= 0"),
        (lambda u, b: {u: {"size": [(0, 1)]}}, "unknown keys"),
        (lambda u, b: {b: {"count": [(0, 1)]}}, "InBatch has no count"),
    ],
)
def test_bad_schedules(schedules, match):
    uniform, in_batch = Uniform(np.arange(40), 16), InBatch()
    if callable(schedules):
        schedules = schedules(uniform, in_batch)
    with pytest.raises((ValueError, TypeError), match=match):
        tfn.callbacks.NegativeCurriculum(schedules)
    with pytest.raises(ValueError, match="`unit`"):
        tfn.callbacks.NegativeCurriculum({uniform: {"count": [(0, 1)]}}, unit="hour")
