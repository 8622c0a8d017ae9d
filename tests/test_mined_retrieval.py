"""Mined negatives in the task (NumPy reference), fallbacks and refresh during training."""

import warnings

import tfrs_negatives as tfn
from tfrs_negatives.mining import BruteForceMiner, HardNegativeTable, KnownPositives
from tfrs_negatives.negatives import InBatch, Mined

import numpy as np
import pytest
import tensorflow as tf
from tests_support import NUM_ITEMS, TwoTower, interactions

DIM = 4


def _softplus_free_loss(rows):
    return sum(np.log(np.exp(r).sum()) - r[0] for r in rows)


@pytest.mark.parametrize("margin", [None, 0.1])
def test_mined_columns_match_numpy(margin):
    rng = np.random.default_rng(0)
    n_items = 10
    table_emb = rng.normal(size=(n_items, DIM)).astype(np.float32)
    pos = np.array([0, 1, 1, 4])
    users = np.array([7, 8, 9, 7])
    queries = rng.normal(size=(4, DIM)).astype(np.float32)
    table = HardNegativeTable(np.arange(n_items), 3)
    neighbours = np.array([[2, 3, 0]] + [[1, 5, 6]] * 3 + [[5, 6, -1]] + [[0, 1, 2]] * 5)
    counts = np.array([3, 3, 3, 3, 2, 3, 3, 3, 3, 3])
    table.assign(neighbours, counts)
    known = KnownPositives([7], [3])  # user 7 knows item 3
    mined = Mined(
        table, np.arange(n_items), count=2, sample="top", known_positives=known, margin=margin
    )
    task = tfn.CorrectedRetrieval(negatives=[InBatch(), mined], correction=None)
    loss = task(
        tf.constant(queries),
        tf.constant(table_emb[pos]),
        candidate_ids=tf.constant(pos),
        candidate_tower=lambda ids: tf.gather(table_emb, ids),
        query_ids=tf.constant(users),
    ).numpy()
    scores = queries.astype(np.float64) @ table_emb.T.astype(np.float64)
    rows = []
    for i in range(4):
        s_pos = scores[i, pos[i]]
        terms = [s_pos]
        for j in range(4):  # in-batch, accidental hits removed (on by default with mined)
            if j != i and pos[j] != pos[i]:
                terms.append(scores[i, pos[j]])
        for item in neighbours[pos[i]][:2]:  # "top": the first 2 of the anchor's window
            if item == pos[i] or (users[i] == 7 and item == 3):
                continue
            if margin is not None and scores[i, item] > s_pos - margin * abs(s_pos):
                continue
            terms.append(scores[i, item])
        rows.append(np.array(terms))
    np.testing.assert_allclose(loss, _softplus_free_loss(rows), rtol=1e-5)


def test_anchor_without_admissible_negative_falls_back_to_uniform_and_is_counted():
    table = HardNegativeTable(np.arange(NUM_ITEMS), 4)  # never mined: every count is 0
    mined = Mined(table, np.arange(NUM_ITEMS), count=2, seed=0)
    ids, _, fallback, _ = mined.sample_rows(tf.constant([1, 2, 3], tf.int64))
    assert fallback.numpy().all() and int(mined.fallbacks.numpy()) == 3
    assert ((ids.numpy() >= 0) & (ids.numpy() < NUM_ITEMS)).all()


def test_query_side_requires_query_ids():
    table = HardNegativeTable(np.arange(5), 2)
    task = tfn.CorrectedRetrieval(
        negatives=[InBatch(), Mined(table, np.arange(5), 1, side="query")], correction=None
    )
    with pytest.raises(ValueError, match="`query_ids` is required"):
        task(
            tf.zeros([2, DIM]),
            tf.zeros([2, DIM]),
            candidate_ids=tf.constant([0, 1]),
            candidate_tower=lambda ids: tf.zeros([tf.size(ids), DIM]),
        )


def _model_with_mining(every_n_steps=None):
    items = np.arange(NUM_ITEMS)
    miner = BruteForceMiner(items, min_rank=2, max_rank=10)
    table = HardNegativeTable(items, miner.window)
    mined = Mined(table, items, count=3, seed=0)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=256), negatives=[InBatch(), mined]
    )
    model = TwoTower(task)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    return model, miner, table, mined


def test_refresh_every_epoch_during_fit():
    model, miner, table, mined = _model_with_mining()
    refresh = tfn.callbacks.RefreshHardNegatives(miner, table, model.item_tower)
    history = model.fit(interactions(), epochs=3, verbose=0, callbacks=[refresh])
    assert np.all(np.isfinite(history.history["loss"]))
    assert int(table.refreshes.numpy()) == 3 and refresh.failures == 0
    assert int(mined.fallbacks.numpy()) == 0
    # The table holds the exact window of the final item tower (last refresh at epoch 2's
    # start, so recompute from the miner's own embeddings).
    emb = miner.embeddings
    want = []
    for a in range(NUM_ITEMS):
        order = [i for i in np.argsort(-(emb @ emb[a]), kind="stable") if i != a]
        want.append(order[2:10])
    assert table.neighbours.numpy().tolist() == want


def test_failed_refresh_keeps_the_table_and_warns():
    model, miner, table, _ = _model_with_mining()
    refresh = tfn.callbacks.RefreshHardNegatives(miner, table, model.item_tower)
    model.fit(interactions().take(1), epochs=1, verbose=0, callbacks=[refresh])
    before = table.neighbours.numpy().copy()

    def broken(ids):
        raise RuntimeError("tower unavailable")

    failing = tfn.callbacks.RefreshHardNegatives(miner, table, broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(interactions(), epochs=2, verbose=0, callbacks=[failing])
    assert failing.failures == 2
    assert any("keeping the previous table" in str(w.message) for w in caught)
    np.testing.assert_array_equal(table.neighbours.numpy(), before)
    assert np.all(np.isfinite(history.history["loss"]))


def test_refresh_every_n_steps():
    model, miner, table, _ = _model_with_mining()
    refresh = tfn.callbacks.RefreshHardNegatives(
        miner, table, model.item_tower, every_n_steps=2, refresh_at_start=False
    )
    model.fit(interactions(), epochs=2, verbose=0, callbacks=[refresh])  # steps 0..7
    assert int(table.refreshes.numpy()) == 3  # at steps 2, 4, 6


def test_mined_get_config_round_trip():
    table = HardNegativeTable(np.arange(6), 3)
    mined = Mined(
        table,
        np.arange(6),
        2,
        side="query",
        sample="top",
        known_positives=KnownPositives([1], [2]),
        margin=0.05,
        seed=3,
    )
    config = mined.get_config()
    clone = Mined.from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("mode", ["keep", "mask"])
def test_mined_terms_are_on_the_scale_of_the_corrected_shared_terms(mode):
    # keep: shared logits s - log p (shares of B draws) and mined s - log(1 / B);
    # mask: shared s - log(1 - (1 - p)^B) and mined s - log 1. Either way a mined
    # negative counts as one certain term.
    rng = np.random.default_rng(1)
    n_items, b = 10, 4
    emb = rng.normal(size=(n_items, DIM)).astype(np.float32)
    p = rng.uniform(0.05, 0.3, n_items).astype(np.float32)
    pos = np.array([0, 1, 2, 3])
    queries = rng.normal(size=(b, DIM)).astype(np.float32)
    table = HardNegativeTable(np.arange(n_items), 2)
    table.assign(np.tile([[7, 8]], (n_items, 1)), np.full(n_items, 2))
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StaticProbabilities(np.arange(n_items), p),
        negatives=[InBatch(), Mined(table, np.arange(n_items), 2, sample="top")],
        duplicates=mode,
    )
    loss = task(
        tf.constant(queries),
        tf.constant(emb[pos]),
        candidate_ids=tf.constant(pos),
        candidate_tower=lambda ids: tf.gather(emb, ids),
    ).numpy()
    s = queries.astype(np.float64) @ emb.T.astype(np.float64)
    q = p[pos].astype(np.float64) if mode == "keep" else 1 - (1 - p[pos]) ** b
    unit = 1.0 / b if mode == "keep" else 1.0
    rows = []
    for i in range(b):
        terms = [s[i, pos[i]] - np.log(q[i])]
        terms += [s[i, pos[j]] - np.log(q[j]) for j in range(b) if j != i]
        terms += [s[i, item] - np.log(unit) for item in (7, 8)]
        rows.append(np.array(terms))
    np.testing.assert_allclose(loss, _softplus_free_loss(rows), rtol=1e-5)


def _miner_and_table():
    items = np.arange(NUM_ITEMS)
    miner = BruteForceMiner(items, min_rank=2, max_rank=10)
    return items, miner, HardNegativeTable(items, miner.window)


def test_mined_over_a_reordered_catalogue_raises():
    items, miner, table = _miner_and_table()
    tfn.callbacks.RefreshHardNegatives(miner, table, tf.keras.layers.Embedding(NUM_ITEMS, DIM))
    with pytest.raises(
        ValueError,
        match=r"The `catalogue` of Mined `shuffled` is not the catalogue the HardNegativeTable "
        r".* expected 40 ids .*recorded from the miner's catalogue.* the same number of ids in "
        r"another order",
    ):
        Mined(table, items[::-1], count=3, name="shuffled")


def test_mined_over_a_subset_of_the_catalogue_raises():
    items, miner, table = _miner_and_table()
    tfn.callbacks.RefreshHardNegatives(miner, table, tf.keras.layers.Embedding(NUM_ITEMS, DIM))
    with pytest.raises(ValueError, match=r"got 20 ids instead of 40"):
        Mined(table, items[:20], count=3)


def test_refresh_with_a_miner_over_another_catalogue_than_mined_raises():
    items, _, table = _miner_and_table()
    Mined(table, items, count=3)  # binds the table to `items`
    other = BruteForceMiner(np.roll(items, 1), min_rank=2, max_rank=10)
    with pytest.raises(
        ValueError, match=r"The miner's catalogue \(`miner.catalogue`\) is not the catalogue"
    ):
        tfn.callbacks.RefreshHardNegatives(other, table, tf.keras.layers.Embedding(NUM_ITEMS, DIM))


def test_assigning_rows_beyond_the_bound_catalogue_raises():
    table = HardNegativeTable(np.arange(5), 2)
    Mined(table, np.arange(5), count=1)
    with pytest.raises(
        ValueError, match=r"`neighbours` must hold catalogue rows in \[0, 5\) .* e\.g\. \[728\]"
    ):
        table.assign([[1, 728], [0, -1], [0, 1], [0, 1], [0, 1]], [2, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="6 ids instead of 5"):
        table.assign(np.zeros([5, 2]), np.zeros(5), catalogue=tfn.negatives.Catalogue(range(6)))


def test_mined_catalogue_binding_survives_config():
    items, miner, table = _miner_and_table()
    mined = Mined(table, items, count=3)
    config = mined.get_config()
    assert config["table"]["config"]["catalogue_size"] == NUM_ITEMS
    clone = Mined.from_config(config)
    assert clone.table.catalogue_fingerprint == miner.catalogue.fingerprint
    with pytest.raises(ValueError, match="not the catalogue"):
        Mined(clone.table, items[::-1], count=3)


def test_mined_rejects_ids_of_the_other_kind():
    table = HardNegativeTable(["u1", "u2"], 2)
    known = KnownPositives(["u1"], [3])
    mined = Mined(table, np.arange(5), 1, side="query", known_positives=known, name="hard")
    mined.check_ids(tf.constant([0, 1]), tf.constant(["u1", "u2"]))
    with pytest.raises(TypeError, match="`candidate_ids` are strings but the Catalogue of Mined"):
        mined.check_ids(tf.constant(["0"]))
    with pytest.raises(
        TypeError, match="`query_ids` are ints but the anchors of the table of Mined `hard`"
    ):
        mined.check_ids(tf.constant([0]), tf.constant([7]))
