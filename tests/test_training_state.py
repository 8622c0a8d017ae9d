"""Training state (weights, estimator, sampler streams, mined table) survives a restore."""

import tfrs_negatives as tfn
from tfrs_negatives.mining import BruteForceMiner, HardNegativeTable
from tfrs_negatives.negatives import InBatch, Mined, Uniform

import numpy as np
import pytest
import tensorflow as tf
from tests_support import NUM_ITEMS, TwoTower, interactions


def _model(seed):
    tf.keras.utils.set_random_seed(seed)
    items = np.arange(NUM_ITEMS)
    miner = BruteForceMiner(items, min_rank=2, max_rank=10)
    table = HardNegativeTable(items, miner.window)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=256),
        negatives=[InBatch(), Uniform(items, 8, seed=seed), Mined(table, items, 3, seed=seed)],
    )
    model = TwoTower(task)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    return model, miner, table


def _state(model, optimizer=True):
    """Every variable of the model (and of its optimizer), in order.

    Layer names differ between two models in one process (embedding, embedding_1), so
    variables are matched by position, with the part of the name after the layer.
    """
    variables = list(model.variables) + (list(model.optimizer.variables()) if optimizer else [])
    return [(v.name.split("/")[-1], v.numpy()) for v in variables]


@pytest.mark.parametrize("how", ["checkpoint", "save_weights"])
def test_restore_gives_identical_variables_and_next_loss(how, tmp_path):
    model, miner, table = _model(0)
    refresh = tfn.callbacks.RefreshHardNegatives(miner, table, model.item_tower)
    model.fit(interactions(), epochs=2, verbose=0, callbacks=[refresh])
    assert int(table.refreshes.numpy()) == 2
    if how == "checkpoint":
        path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
            str(tmp_path / "ckpt")
        )
    else:
        path = str(tmp_path / "weights")
        model.save_weights(path)
    saved = _state(model)
    batch = next(iter(interactions(seed=5)))
    continued = model.train_step(batch)["loss"].numpy()

    fresh, _, _ = _model(1)
    fresh.train_step(next(iter(interactions(seed=9))))  # create the variables, then overwrite
    if how == "checkpoint":
        tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(path)
        restored = _state(fresh)
    else:
        fresh.load_weights(path)  # the optimizer's slots are restored on its first step
        restored = _state(fresh, optimizer=False)
        saved = saved[: len(restored)]
    assert len(restored) == len(saved) > 10
    for (name, got), (want_name, want) in zip(restored, saved):
        assert name == want_name
        np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_allclose(fresh.train_step(batch)["loss"].numpy(), continued, rtol=1e-6)
