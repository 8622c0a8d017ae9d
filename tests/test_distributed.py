"""Global negatives under `tf.distribute`: R replicas train as one device on the global batch.

The test process has 4 logical CPU devices (`conftest.NUM_LOGICAL_CPUS`).
"""

import tfrs_negatives as tfn
from tfrs_negatives.callbacks import NegativeCurriculum, RefreshHardNegatives
from tfrs_negatives.mining import BruteForceMiner
from tfrs_negatives.negatives import (
    FullCatalogue,
    HardNegativeTable,
    InBatch,
    Mined,
    Popularity,
    Uniform,
)

import numpy as np
import pytest
import tensorflow as tf
from distributed_support import (
    DIM,
    WeightedTwoTower,
    assert_same_state,
    logq_task,
    trained,
    trained_state,
    weighted_log,
)
from tests_support import NUM_ITEMS, FixedDraws


def _mirrored(num_devices):
    """A MirroredStrategy over `/cpu:0..n-1`. Collective group keys restart at 1 in every
    strategy, and one process may not join a key with two group sizes: each strategy of
    the tests takes its own key range (TF's own tests set the same class attribute)."""
    return _default_mirrored([f"/cpu:{i}" for i in range(num_devices)])


def _default_mirrored(devices=None):
    """`MirroredStrategy(devices)` with its own collective key range (see `_mirrored`)."""
    tf.distribute.MirroredStrategy._collective_key_base += 10_000
    return tf.distribute.MirroredStrategy(devices)


@pytest.mark.parametrize("num_devices", [2, 4])
def test_global_negatives_train_as_one_device(num_devices):
    one_model, one_losses = trained(tf.distribute.get_strategy(), logq_task)
    model, losses = trained(_mirrored(num_devices), logq_task)
    assert_same_state(trained_state(model), trained_state(one_model))
    np.testing.assert_allclose(losses, one_losses, rtol=1e-5)  # Keras sums replicas' losses
    initial = WeightedTwoTower(None).item_tower(tf.range(NUM_ITEMS)).numpy()
    assert np.abs(trained_state(model)["item"] - initial).max() > 1e-2  # the steps did move


def _replica_losses(strategy, make_task, batch):
    """Each replica's loss on its slice of `batch` (the model's initial weights)."""
    with strategy.scope():
        model = WeightedTwoTower(make_task())
    dataset = tf.data.Dataset.from_tensors(batch)
    distributed = next(iter(strategy.experimental_distribute_dataset(dataset)))
    per_replica = strategy.run(
        lambda features: model.compute_loss(features, training=False), args=(distributed,)
    )
    return [float(x) for x in strategy.experimental_local_results(per_replica)]


def test_per_replica_negatives_are_each_slice_alone():
    batch = next(iter(weighted_log()))
    per_replica = _replica_losses(
        _mirrored(2), lambda: logq_task(cross_replica_negatives=False), batch
    )
    halves = [{k: v[:32] for k, v in batch.items()}, {k: v[32:] for k, v in batch.items()}]
    alone = [_replica_losses(tf.distribute.get_strategy(), logq_task, h)[0] for h in halves]
    np.testing.assert_allclose(per_replica, alone, rtol=1e-5)
    global_loss = _replica_losses(_mirrored(2), logq_task, batch)
    one_device = _replica_losses(tf.distribute.get_strategy(), logq_task, batch)
    np.testing.assert_allclose(sum(global_loss), one_device[0], rtol=1e-5)
    assert abs(sum(per_replica) - one_device[0]) > 1e-3 * abs(one_device[0])


def _mixed_task(draws=(3, 7, 7, 20, 39)):
    return logq_task(negatives=[InBatch(), FixedDraws(np.arange(NUM_ITEMS), list(draws))])


def test_global_negatives_with_shared_draws_train_as_one_device():
    # Every replica scores the same draws: each row sees the global batch and the draws,
    # so the mixture probability (global batch + K draws) is the one-device one.
    one_model, one_losses = trained(tf.distribute.get_strategy(), _mixed_task)
    model, losses = trained(_mirrored(2), _mixed_task)
    assert_same_state(trained_state(model), trained_state(one_model))
    np.testing.assert_allclose(losses, one_losses, rtol=1e-5)


def _every_source_task():
    items = np.arange(NUM_ITEMS)
    counts = np.arange(NUM_ITEMS, 0, -1)
    table = HardNegativeTable(items, 8)
    return tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=64),
        negatives=[
            InBatch(),
            Uniform(items, 6, seed=0),
            Popularity(items, 4, power=0.75, counts=counts, seed=1),
            Mined(table, items, count=2, seed=2, name="mined"),
        ],
    )


def _every_source_model(strategy):
    with strategy.scope():
        model = WeightedTwoTower(_every_source_task())
        model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    sources = model.task.negatives
    table = sources[3].table
    miner = BruteForceMiner(np.arange(NUM_ITEMS), min_rank=1, max_rank=9)
    callbacks = [
        RefreshHardNegatives(miner, table, model.item_tower),
        NegativeCurriculum({sources[1]: {"count": [(0, 2), (4, 6)]}}),
    ]
    return model, table, callbacks


STRATEGIES = {
    "MirroredStrategy()": _default_mirrored,  # the TFRS tutorial's: every (logical) CPU
    "OneDeviceStrategy": lambda: tf.distribute.OneDeviceStrategy("/cpu:0"),
    "Mirrored 1 CPU": lambda: _mirrored(1),
    "Mirrored 2 CPUs": lambda: _mirrored(2),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_source_estimator_curriculum_and_refresh_train(name):
    model, table, callbacks = _every_source_model(STRATEGIES[name]())
    history = model.fit(weighted_log(), epochs=2, verbose=0, callbacks=callbacks)
    assert np.all(np.isfinite(history.history["loss"]))
    assert int(table.refreshes.numpy()) == 2 and callbacks[0].failures == 0
    assert int(model.task.negatives[1].active_count.numpy()) == 6
    assert int(model.task.frequency.examples_seen.numpy()) == 2 * 250
    # The refreshed table is the exact window of the trained item tower.
    emb = model.item_tower.embeddings.numpy()
    miner = callbacks[0].miner
    np.testing.assert_array_equal(table.neighbours.numpy()[:5], _window(miner.embeddings, 1, 9)[:5])
    mass = history.history["negatives/mined/mass"][-1]
    assert 0.0 < mass < 1.0 and emb.shape == (NUM_ITEMS, DIM)


def _window(embeddings, lo, hi):
    rows = []
    for anchor in range(len(embeddings)):
        order = np.argsort(-(embeddings @ embeddings[anchor]), kind="stable")
        rows.append([i for i in order if i != anchor][lo:hi])
    return np.array(rows)


def test_checkpoints_restore_across_replica_counts(tmp_path):
    model, table, callbacks = _every_source_model(_mirrored(2))
    model.fit(weighted_log(), epochs=1, verbose=0, callbacks=callbacks)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "two"))
    saved = _full_state(model)

    one, _, _ = _every_source_model(tf.distribute.get_strategy())
    one.fit(weighted_log(seed=3).take(1), verbose=0)  # creates every variable, then overwritten
    tf.train.Checkpoint(model=one).restore(path).assert_existing_objects_matched()
    _assert_equal_states(_full_state(one), saved)

    four, _, _ = _every_source_model(_mirrored(4))
    four.fit(weighted_log(seed=4).take(1), verbose=0)
    back = tf.train.Checkpoint(model=one).save(str(tmp_path / "one"))
    tf.train.Checkpoint(model=four).restore(back).assert_existing_objects_matched()
    _assert_equal_states(_full_state(four), saved)


def _full_state(model):
    """Every variable's value, in the model's order (names differ between instances)."""
    return [(v.name, v.numpy()) for v in model.variables]


def _assert_equal_states(got, want):
    assert len(got) == len(want)
    for (name, value), (_, wanted) in zip(got, want):
        np.testing.assert_array_equal(value, wanted, err_msg=name)


class FixedPopularityDraws(Popularity):
    """A popularity source whose draws are given (its probabilities stay popularity's)."""

    def __init__(self, catalogue, indices, **kwargs):
        super().__init__(catalogue, len(indices), **kwargs)
        self._indices = tf.constant(indices, tf.int64)

    def sample(self):
        return self.catalogue.gather(self._indices)


def _deterministic_sources_task(table):
    items = np.arange(NUM_ITEMS)
    counts = np.arange(NUM_ITEMS, 0, -1)
    return logq_task(
        negatives=[
            InBatch(),
            FixedPopularityDraws(items, [0, 1, 1, 5, 30], power=0.75, counts=counts),
            FullCatalogue(items),
            Mined(table, items, count=3, sample="top"),
        ]
    )


def _trained_with_refresh(strategy):
    items = np.arange(NUM_ITEMS)
    with strategy.scope():
        table = HardNegativeTable(items, 4)
        model = WeightedTwoTower(_deterministic_sources_task(table))
        model.compile(optimizer=tf.keras.optimizers.SGD(0.02))
    refresh = RefreshHardNegatives(
        BruteForceMiner(items, min_rank=2, max_rank=6), table, model.item_tower
    )
    history = model.fit(weighted_log(), epochs=2, verbose=0, shuffle=False, callbacks=[refresh])
    return model, table, history.history["loss"]


def test_popularity_full_catalogue_and_refreshed_mined_train_as_one_device():
    # Deterministic draws (fixed popularity draws, the whole catalogue, the top of each
    # refreshed window): each row sees what it sees on one device, so training is equal.
    one_model, one_table, one_losses = _trained_with_refresh(tf.distribute.get_strategy())
    model, table, losses = _trained_with_refresh(_mirrored(2))
    assert_same_state(trained_state(model), trained_state(one_model))
    np.testing.assert_allclose(losses, one_losses, rtol=1e-5)
    np.testing.assert_array_equal(table.neighbours.numpy(), one_table.neighbours.numpy())
    assert int(table.refreshes.numpy()) == 2


def _fit_history(strategy, make_task, log):
    with strategy.scope():
        model = WeightedTwoTower(make_task())
        model.compile(optimizer=tf.keras.optimizers.SGD(0.02))
    return model, model.fit(log, epochs=1, verbose=0, shuffle=False).history


def test_empty_replica_shares_of_a_small_last_batch():
    """65 rows in batches of 64 over 4 replicas: the last step gives 3 replicas no row.
    Training still equals one device, the diagnostics (every row measured) average over
    replicas to one device's figures, and per-replica negatives (`[0, 0]` logits on the
    empty replicas) train too."""
    log = weighted_log(n=65, batch=64)

    def task(**kw):
        return logq_task(
            negatives=[InBatch(name="in_batch")], diagnostics=True, diagnostics_stride=1, **kw
        )

    one_model, one = _fit_history(tf.distribute.get_strategy(), task, log)
    model, four = _fit_history(_mirrored(4), task, log)
    assert_same_state(trained_state(model), trained_state(one_model))
    for key in ("in_batch/mass", "in_batch/masked", "in_batch/distinct", "positive/mass"):
        name = f"negatives/{key}"
        np.testing.assert_allclose(four[name], one[name], rtol=1e-5, err_msg=name)
    # The gap: each replica's mean over its rows' entries, weighed by its rows.
    name = "negatives/in_batch/gap"
    np.testing.assert_allclose(four[name], one[name], rtol=0.05, err_msg=name)
    _, apart = _fit_history(_mirrored(4), lambda: task(cross_replica_negatives=False), log)
    assert all(np.isfinite(values).all() for values in apart.values()), apart
    assert apart["negatives/positive/mass"][0] > one["negatives/positive/mass"][0]
