"""`negatives.Cache`: Gumbel-max draws from cached scores, re-embedded and corrected."""

import json
import os
import tempfile

import tfrs_negatives as tfn
from tfrs_negatives.experiments import compare
from tfrs_negatives.negatives import Cache, InBatch
from tfrs_negatives.negatives.row_draws import RowContext, gumbel_max_draws
from tfrs_negatives.tasks import CorrectedRetrieval

import numpy as np
import pytest
import tensorflow as tf
from tests_support import NUM_ITEMS, TINY_SYNTHETIC, TwoTower, interactions

N, D, B = 12, 4, 5


def _tower(seed: int = 0) -> tf.keras.layers.Embedding:
    tower = tf.keras.layers.Embedding(N, D)
    tower(tf.constant([0]))
    rng = np.random.default_rng(seed)
    tower.set_weights([rng.normal(size=(N, D)).astype(np.float32)])
    return tower


def _batch(seed: int = 1):
    rng = np.random.default_rng(seed)
    queries = rng.normal(size=(B, D)).astype(np.float32)
    positives = np.array([0, 3, 3, 7, 11], np.int64)
    return queries, positives


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_gumbel_max_draws_follow_the_softmax():
    logits = np.array([[1.0, 0.0, -1.0, 2.0, -1e9]], np.float32)
    rows = 20000
    generator = tf.random.Generator.from_seed(3)
    draws = gumbel_max_draws(generator, tf.constant(np.repeat(logits, rows, 0)), 2).numpy()
    frequency = np.bincount(draws.reshape(-1), minlength=5) / draws.size
    np.testing.assert_allclose(frequency, _softmax(logits[0]), atol=0.01)
    assert frequency[4] == 0.0
    # The two draws of a row are independent (with replacement): P(same) = sum p^2.
    same = np.mean(draws[:, 0] == draws[:, 1])
    assert abs(same - np.sum(_softmax(logits[0]) ** 2)) < 0.015


def _context(queries, positives, tower, training=False):
    embeddings = tower(tf.constant(positives))
    scores = tf.reduce_sum(tf.constant(queries) * embeddings, 1)
    return RowContext(
        tf.constant(queries), tf.constant(positives), embeddings, scores, tower, training
    )


def _reference_loss(queries, positives, table, draws, p_all, q_all, count, mode):  # noqa: PLR0913
    """NumPy: every column of row i corrected by the mixture of B in-batch draws from q and
    `count` Cache draws from p_i (the balance heuristic), accidental hits removed.

    keep: Q_i(j) = q_j + count p_i(j) / B; mask: 1 - (1 - q_j)^B (1 - p_i(j))^count,
    later copies of an id masked (in the batch's columns and in each row's draws).
    """
    rows = np.arange(B)[:, None]
    if mode == "keep":
        mix = lambda j: q_all[j] + count * p_all[rows, j] / B  # noqa: E731
    else:
        mix = lambda j: 1 - (1 - q_all[j]) ** B * (1 - p_all[rows, j]) ** count  # noqa: E731
    columns = np.broadcast_to(positives[None, :], (B, B))
    scores = queries @ table[positives].T - np.log(mix(columns))
    masked = (positives[None, :] == positives[:, None]) & ~np.eye(B, dtype=bool)
    row_scores = np.einsum("bd,bkd->bk", queries, table[draws]) - np.log(mix(draws))
    row_masked = draws == positives[:, None]
    if mode == "mask":
        later = np.array([positives[j] in positives[:j] for j in range(B)])
        masked |= later[None, :] & ~np.eye(B, dtype=bool)
        for i in range(B):
            for s in range(count):
                row_masked[i, s] |= draws[i, s] in draws[i, :s]
    shared = np.where(masked, -1e9, scores)
    logits = np.concatenate([shared, np.where(row_masked, -1e9, row_scores)], 1)
    top = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
    return float(np.sum(lse - np.diag(scores)))


@pytest.mark.parametrize("mode", ["keep", "mask"])
def test_task_loss_matches_numpy(mode):
    tower = _tower()
    queries, positives = _batch()
    cache = Cache(np.arange(N), count=3, seed=5, name="cache")
    cache.fill(tower)
    q_all = np.linspace(0.01, 0.2, N).astype(np.float32)
    task = CorrectedRetrieval(
        frequency=tfn.StaticProbabilities(np.arange(N), q_all),
        negatives=[InBatch(), cache],
        duplicates=mode,
        jit_compile=False,
    )
    state = cache.generator.state.numpy()
    probe = cache.draw_rows(_context(queries, positives, tower))
    draws, p = probe.ids.numpy(), probe.probabilities.numpy()
    cache.generator.reset(state)
    loss = task(
        tf.constant(queries),
        tower(tf.constant(positives)),
        candidate_ids=tf.constant(positives),
        candidate_tower=tower,
        training=False,
    )
    table = tower.get_weights()[0].astype(np.float64)
    logits = queries.astype(np.float64) @ table.T
    own = np.arange(N)[None, :] == positives[:, None]
    p_all = _softmax(np.where(own, -1e9, logits))
    np.testing.assert_allclose(p, np.take_along_axis(p_all, draws, 1), rtol=1e-5)
    q64 = q_all.astype(np.float64)
    want = _reference_loss(queries, positives, table, draws, p_all, q64, 3, mode)
    assert float(loss) == pytest.approx(want, rel=1e-5)


def test_training_call_refreshes_drawn_positive_and_round_robin_rows():
    tower = _tower()
    queries, positives = _batch()
    cache = Cache(np.arange(N), count=2, refresh=4, seed=0, dim=D)
    draw = cache.draw_rows(_context(queries, positives, tower, training=True))
    written = set(draw.ids.numpy().reshape(-1)) | set(positives) | {0, 1, 2, 3}
    stored = cache.embeddings.numpy()
    table = tower.get_weights()[0]
    for row in range(N):
        expected = table[row] if row in written else np.zeros(D)
        np.testing.assert_allclose(stored[row], expected, atol=1e-6)
    assert int(cache.pointer.numpy()) == 4 and int(cache.steps.numpy()) == 1
    assert cache.staleness()["written"].numpy() == len(written)
    # An evaluation call reads but writes nothing.
    cache.draw_rows(_context(queries, positives, _tower(seed=9), training=False))
    np.testing.assert_allclose(cache.embeddings.numpy(), stored)
    assert int(cache.steps.numpy()) == 1


def test_draws_follow_the_cache_not_the_tower_and_gradient_reaches_drawn_rows():
    tower = _tower()
    queries, positives = _batch()
    cache = Cache(np.arange(N), count=4, seed=1, temperature=0.5)
    cache.fill(tower)
    with tf.GradientTape() as tape:
        draw = cache.draw_rows(_context(queries, positives, tower))
        total = tf.reduce_sum(draw.embeddings)
    gradient = tf.convert_to_tensor(tape.gradient(total, tower.trainable_variables[0])).numpy()
    drawn = set(draw.ids.numpy().reshape(-1))
    for row in range(N):
        assert (np.abs(gradient[row]).sum() > 0) == (row in drawn)
    assert not np.any(draw.ids.numpy() == positives[:, None])  # positive left out


def _fit_model(cache, steps=1):
    task = CorrectedRetrieval(
        frequency=tfn.estimators.StreamingFrequencyEstimator(),
        negatives=[InBatch(), cache],
    )
    model = TwoTower(task)
    model.item_tower(tf.constant([0]))
    model.untrained_loss = _full_softmax_loss(model)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    history = model.fit(interactions(n=128, batch=32), epochs=steps, verbose=0)
    return model, history


def _full_softmax_loss(model) -> float:
    """Mean cross-entropy of the training pairs over the whole catalogue (no sampling)."""
    batch = next(iter(interactions(n=128, batch=128)))
    queries = tf.cast(model.query_tower(batch["user"]), tf.float32)
    items = tf.cast(model.item_tower.embeddings, tf.float32)
    scores = tf.matmul(queries, items, transpose_b=True)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(batch["item"], scores)
    return float(tf.reduce_mean(losses))


def test_fit_is_finite_and_checkpoint_restores_the_cache():
    cache = Cache(np.arange(NUM_ITEMS), count=4, refresh=8, seed=2, name="cache")
    model, history = _fit_model(cache, steps=2)
    # The epoch losses need not fall: the cache's negatives harden as it fills.
    assert np.all(np.isfinite(history.history["loss"]))
    assert _full_softmax_loss(model) < model.untrained_loss - 0.05
    assert "negatives/cache/mass" in history.history
    with tempfile.TemporaryDirectory() as directory:
        path = tf.train.Checkpoint(model=model).save(os.path.join(directory, "ckpt"))
        stored = cache.embeddings.numpy().copy()
        steps = int(cache.steps.numpy())
        state = cache.generator.state.numpy().copy()
        cache.embeddings.assign(tf.zeros_like(cache.embeddings))
        cache.steps.assign(0)
        cache.generator.reset_from_seed(99)
        tf.train.Checkpoint(model=model).restore(path).assert_existing_objects_matched()
    np.testing.assert_allclose(cache.embeddings.numpy(), stored)
    assert int(cache.steps.numpy()) == steps
    np.testing.assert_array_equal(cache.generator.state.numpy(), state)


def test_mixed_precision_loss_is_finite():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        cache = Cache(np.arange(NUM_ITEMS), count=3, seed=0)
        _, history = _fit_model(cache)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history.history["loss"][0])


def test_config_round_trip():
    cache = Cache(np.arange(6), count=3, refresh=2, temperature=0.7, dim=4, seed=1, weight=0.5)
    config = cache.get_config()
    rebuilt = Cache.from_config(config)
    assert rebuilt.get_config() == config
    assert (rebuilt.count, rebuilt.refresh, rebuilt.temperature, rebuilt.dim) == (3, 2, 0.7, 4)
    task = CorrectedRetrieval(negatives=[InBatch(), cache])
    again = CorrectedRetrieval.from_config(task.get_config())
    assert isinstance(again.negatives[1], Cache)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "`count` must be an integer >= 1"),
        ({"count": 2, "refresh": -1}, "`refresh` must be an integer >= 0"),
        ({"count": 2, "temperature": 0.0}, "`temperature` must be finite and > 0"),
        ({"count": 2, "dim": 0}, "`dim` must be an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Cache(np.arange(6), **kwargs)


def test_wrong_dimension_and_missing_tower_are_errors():
    cache = Cache(np.arange(N), count=2, dim=3)
    queries, positives = _batch()
    with pytest.raises(ValueError, match="dimension 3"):
        cache.draw_rows(_context(queries, positives, _tower()))
    context = _context(queries, positives, _tower())._replace(candidate_tower=None)
    with pytest.raises(ValueError, match="`candidate_tower` is required by Cache"):
        Cache(np.arange(N), count=2).draw_rows(context)


def test_compare_trains_the_cache_strategy_alone_and_in_a_mix(tmp_path, capsys):
    flags = list(TINY_SYNTHETIC)
    flags[flags.index("--strategies") + 1] = "cache"
    flags[flags.index("--epochs") + 1] = "1"
    # `--mix cache=1`: the cache's draws without in-batch negatives.
    argv = ["compare", *flags, "--mix", "cache=1", "--output_dir", str(tmp_path)]
    code = compare.main(argv)
    assert code == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    assert list(rows) == ["cache", "mix"]
    for row in rows.values():
        assert np.isfinite(row["final_loss"]) and 0.0 <= row["recall@50"] <= 1.0
