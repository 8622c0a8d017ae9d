"""`negatives.Dynamic`: hardest or softmax-sampled negatives among candidates scored in-graph."""

import json
import os
import tempfile

import tfrs_negatives as tfn
from tfrs_negatives.experiments import compare
from tfrs_negatives.negatives import Dynamic, InBatch, KnownPositives
from tfrs_negatives.negatives.row_draws import RowContext
from tfrs_negatives.tasks import CorrectedRetrieval

import numpy as np
import pytest
import tensorflow as tf
from test_cache import _reference_loss
from tests_support import NUM_ITEMS, TINY_SYNTHETIC, TwoTower, interactions

N, D, B, M = 12, 4, 5, 10
COUNTS = np.arange(1, N + 1, dtype=np.float64)


def _tower(seed: int = 0) -> tf.keras.layers.Embedding:
    tower = tf.keras.layers.Embedding(N, D)
    tower(tf.constant([0]))
    rng = np.random.default_rng(seed)
    tower.set_weights([rng.normal(size=(N, D)).astype(np.float32)])
    return tower


def _batch(seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, D)).astype(np.float32), np.array([0, 3, 3, 7, 11], np.int64)


def _context(queries, positives, tower, query_ids=None, training=False):
    embeddings = tower(tf.constant(positives))
    scores = tf.reduce_sum(tf.constant(queries) * embeddings, 1)
    return RowContext(
        tf.constant(queries),
        tf.constant(positives),
        embeddings,
        scores,
        tower,
        training,
        None if query_ids is None else tf.constant(query_ids),
    )


def _drawn_pool(source: Dynamic, context: RowContext):
    """The source's draw and the candidate rows it drew (the generator's first call)."""
    state = source.generator.state.numpy()
    pool = source.proposed_rows().numpy()
    source.generator.reset(state)
    return source.draw_rows(context), pool


def _allowed(scores, pool_ids, positives, margin=None, known=None):
    """NumPy `[B, n]`: not the positive, not a known positive, not above the margin."""
    allowed = pool_ids != positives[:, None]
    if known is not None:
        allowed &= ~known
    if margin is not None:
        positive = scores["positive"]
        allowed &= scores["pool"] <= (positive - margin * np.abs(positive))[:, None]
    return allowed


def test_top_keeps_each_rows_hardest_distinct_allowed_candidates():
    tower, (queries, positives) = _tower(), _batch()
    known = KnownPositives(np.array([0, 1]), np.array([5, 2]))  # query 0 knows 5, query 1 knows 2
    source = Dynamic(np.arange(N), candidates=M, keep=3, margin=0.2, known_positives=known, seed=4)
    draw, pool = _drawn_pool(source, _context(queries, positives, tower, np.arange(B)))
    table = tower.get_weights()[0]
    scores = {"pool": queries @ table[pool].T, "positive": np.sum(queries * table[positives], 1)}
    known_mask = np.zeros((B, M), bool)
    known_mask[0] = pool == 5
    known_mask[1] = pool == 2
    allowed = _allowed(scores, pool[None, :], positives, 0.2, known_mask)
    for i in range(B):
        best = {}
        for c in np.flatnonzero(allowed[i]):
            best.setdefault(pool[c], scores["pool"][i, c])
        want = sorted(best, key=best.get, reverse=True)[:3]
        got = draw.ids.numpy()[i][draw.valid.numpy()[i]]
        assert list(got) == want
        assert draw.valid.numpy()[i].sum() == min(3, len(best))
    assert draw.probabilities is None and draw.probability_of is None  # chosen, not sampled


def _sir_reference(queries, table, positives, pool, temperature, log_r):  # noqa: PLR0913
    """NumPy `(p_all [B, N], log_z [B])`: exp(s/T) / Z_i, Z_i = mean_c exp(s_ic/T) / r(c)."""
    logits = queries.astype(np.float64) @ table.T.astype(np.float64) / temperature
    allowed = pool[None, :] != positives[:, None]
    terms = np.exp(logits[:, pool] - log_r[pool][None, :]) * allowed
    z = terms.sum(1) / len(pool)
    p_all = np.exp(logits) / z[:, None]
    p_all[np.arange(B), positives] = 0.0
    return np.minimum(p_all, 1.0)


def test_softmax_probabilities_and_probability_of_match_numpy():
    tower, (queries, positives) = _tower(), _batch()
    source = Dynamic(
        np.arange(N), candidates=M, keep=4, select="softmax", temperature=0.7, counts=COUNTS,
        power=0.5, seed=3,
    )
    context = _context(queries, positives, tower)
    draw, pool = _drawn_pool(source, context)
    table = tower.get_weights()[0]
    log_r = np.log(COUNTS**0.5 / np.sum(COUNTS**0.5))
    np.testing.assert_allclose(source.log_proposal(), log_r, rtol=1e-12)
    p_all = _sir_reference(queries, table, positives, pool, 0.7, log_r)
    ids = draw.ids.numpy()
    assert set(ids.reshape(-1)) <= set(pool)
    np.testing.assert_allclose(draw.probabilities.numpy(), np.take_along_axis(p_all, ids, 1),
                               rtol=1e-4)
    everything = np.broadcast_to(np.arange(N)[None, :], (B, N))
    raw = tf.constant(queries @ table.T)
    got = draw.probability_of(tf.constant(everything, tf.int64), raw).numpy()
    np.testing.assert_allclose(got, p_all, rtol=1e-4, atol=1e-7)


def test_softmax_selection_follows_the_importance_weights():
    """One call, one pool, many copies of a query: each candidate is chosen in proportion
    to exp(s / T) / r(c), summed over its copies in the pool."""
    tower = _tower()
    queries = np.repeat(_batch()[0][:1], 20000, 0)
    positives = np.full(20000, 11, np.int64)
    source = Dynamic(np.arange(N), candidates=M, keep=1, select="softmax", counts=COUNTS, seed=8)
    draw, pool = _drawn_pool(source, _context(queries, positives, tower))
    s = queries[0] @ tower.get_weights()[0][pool].T
    weights = np.exp(s - source.log_proposal()[pool]) * (pool != 11)
    want = np.bincount(pool, weights, minlength=N) / weights.sum()
    frequency = np.bincount(draw.ids.numpy().reshape(-1), minlength=N) / 20000
    np.testing.assert_allclose(frequency, want, atol=0.012)
    assert frequency[11] == 0.0


def test_popularity_proposal_draws_in_proportion_to_counts_to_the_power():
    source = Dynamic(np.arange(N), candidates=20000, keep=1, counts=COUNTS, power=2.0, seed=1)
    frequency = np.bincount(source.proposed_rows().numpy(), minlength=N) / 20000
    np.testing.assert_allclose(frequency, COUNTS**2 / np.sum(COUNTS**2), atol=0.01)
    uniform = Dynamic(np.arange(N), candidates=20000, keep=1, seed=1).proposed_rows().numpy()
    np.testing.assert_allclose(np.bincount(uniform, minlength=N) / 20000, 1 / N, atol=0.01)


@pytest.mark.parametrize("mode", ["keep", "mask"])
def test_task_loss_with_softmax_draws_matches_numpy(mode):
    tower, (queries, positives) = _tower(), _batch()
    source = Dynamic(np.arange(N), candidates=M, keep=3, select="softmax", seed=6, name="dyn")
    q_all = np.linspace(0.01, 0.2, N).astype(np.float32)
    task = CorrectedRetrieval(
        frequency=tfn.StaticProbabilities(np.arange(N), q_all),
        negatives=[InBatch(), source],
        duplicates=mode,
        jit_compile=False,
    )
    state = source.generator.state.numpy()
    probe, pool = _drawn_pool(source, _context(queries, positives, tower))
    source.generator.reset(state)
    loss = task(
        tf.constant(queries),
        tower(tf.constant(positives)),
        candidate_ids=tf.constant(positives),
        candidate_tower=tower,
        training=False,
    )
    table = tower.get_weights()[0].astype(np.float64)
    p_all = _sir_reference(queries, table, positives, pool, 1.0, np.full(N, -np.log(N)))
    want = _reference_loss(
        queries, positives, table, probe.ids.numpy(), p_all, q_all.astype(np.float64), 3, mode
    )
    assert float(loss) == pytest.approx(want, rel=1e-5)


def test_task_loss_with_top_draws_matches_numpy():
    """Chosen draws are certain terms: uncorrected scores ("mask" mode)."""
    tower, (queries, positives) = _tower(), _batch()
    source = Dynamic(np.arange(N), candidates=M, keep=2, seed=2)
    q_all = np.linspace(0.01, 0.2, N)
    task = CorrectedRetrieval(
        frequency=tfn.StaticProbabilities(np.arange(N), q_all.astype(np.float32)),
        negatives=[InBatch(), source],
        duplicates="mask",
        jit_compile=False,
    )
    state = source.generator.state.numpy()
    draws = _drawn_pool(source, _context(queries, positives, tower))[0].ids.numpy()
    source.generator.reset(state)
    loss = task(tf.constant(queries), tower(tf.constant(positives)),
                candidate_ids=tf.constant(positives), candidate_tower=tower, training=False)
    table = tower.get_weights()[0].astype(np.float64)
    shared = queries @ table[positives].T - np.log(1 - (1 - q_all[positives]) ** B)[None, :]
    later = np.array([positives[j] in positives[:j] for j in range(B)])
    masked = ((positives[None, :] == positives[:, None]) | later[None, :]) & ~np.eye(B, dtype=bool)
    logits = np.concatenate(
        [np.where(masked, -np.inf, shared), np.einsum("bd,bkd->bk", queries, table[draws])], 1
    )
    want = np.sum(np.log(np.exp(logits).sum(1)) - np.diag(shared))
    assert float(loss) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("select", ["top", "softmax"])
def test_gradient_reaches_the_kept_candidates_only(select):
    tower, (queries, positives) = _tower(), _batch()
    source = Dynamic(np.arange(N), candidates=M, keep=2, select=select, seed=1)
    with tf.GradientTape() as tape:
        draw = source.draw_rows(_context(queries, positives, tower))
        total = tf.reduce_sum(draw.embeddings)
    gradient = tf.convert_to_tensor(tape.gradient(total, tower.trainable_variables[0])).numpy()
    kept = set(draw.ids.numpy().reshape(-1))
    for row in range(N):
        assert (np.abs(gradient[row]).sum() > 0) == (row in kept)


def _fit_model(source, epochs=1):
    task = CorrectedRetrieval(
        frequency=tfn.estimators.StreamingFrequencyEstimator(), negatives=[InBatch(), source]
    )
    model = TwoTower(task)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    return model, model.fit(interactions(n=128, batch=32), epochs=epochs, verbose=0)


@pytest.mark.parametrize("select", ["top", "softmax"])
def test_fit_is_finite_and_checkpoint_restores_the_generator(select):
    source = Dynamic(np.arange(NUM_ITEMS), candidates=16, keep=4, select=select, seed=2,
                     name="dynamic")
    model, history = _fit_model(source, epochs=2)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["negatives/dynamic/mass"][-1] > 0.0
    with tempfile.TemporaryDirectory() as directory:
        path = tf.train.Checkpoint(model=model).save(os.path.join(directory, "ckpt"))
        state = source.generator.state.numpy().copy()
        source.generator.reset_from_seed(99)
        tf.train.Checkpoint(model=model).restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(source.generator.state.numpy(), state)


def test_mixed_precision_loss_is_finite():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        source = Dynamic(np.arange(NUM_ITEMS), candidates=16, keep=3, select="softmax", seed=0)
        _, history = _fit_model(source)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history.history["loss"][0])


def test_config_round_trip():
    known = KnownPositives(np.array([0, 1]), np.array([2, 3]))
    source = Dynamic(np.arange(6), candidates=5, keep=2, select="softmax", temperature=0.5,
                     margin=0.1, known_positives=known, counts=np.arange(1, 7), power=0.75,
                     seed=1, weight=0.5)
    config = source.get_config()
    rebuilt = Dynamic.from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    assert (rebuilt.candidates, rebuilt.count, rebuilt.select, rebuilt.margin) == (5, 2,
                                                                                    "softmax", 0.1)
    np.testing.assert_allclose(rebuilt.log_proposal(), source.log_proposal())
    again = CorrectedRetrieval.from_config(
        CorrectedRetrieval(negatives=[InBatch(), source]).get_config()
    )
    assert isinstance(again.negatives[1], Dynamic) and again.negatives[1].samples_rows


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"candidates": 0, "keep": 1}, "`candidates` must be an integer >= 1"),
        ({"candidates": 4, "keep": 0}, "`keep` must be an integer >= 1"),
        ({"candidates": 4, "keep": 5}, r"`keep` \(5\) must be <= `candidates` \(4\)"),
        ({"candidates": 4, "keep": 2, "select": "best"}, "`select` must be one of"),
        ({"candidates": 4, "keep": 2, "temperature": -1.0}, "`temperature` must be finite"),
        ({"candidates": 4, "keep": 2, "margin": -0.1}, "`margin` must be None or finite"),
        ({"candidates": 4, "keep": 2, "counts": [1, 2]}, "one count per catalogue item"),
        ({"candidates": 4, "keep": 2, "counts": [0] * 6}, "must not all be zero"),
        ({"candidates": 4, "keep": 2, "counts": [-1] * 6}, "finite and >= 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Dynamic(np.arange(6), **kwargs)


def test_missing_tower_or_query_ids_are_errors():
    queries, positives = _batch()
    context = _context(queries, positives, _tower())
    with pytest.raises(ValueError, match="`candidate_tower` is required by Dynamic"):
        no_tower = context._replace(candidate_tower=None)
        Dynamic(np.arange(N), candidates=4, keep=2).draw_rows(no_tower)
    known = KnownPositives(np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="`query_ids` is required by Dynamic"):
        Dynamic(np.arange(N), candidates=4, keep=2, known_positives=known).draw_rows(context)


def test_compare_trains_the_dynamic_strategies_and_a_mix(tmp_path, capsys):
    flags = list(TINY_SYNTHETIC)
    flags[flags.index("--strategies") + 1] = "dynamic,dynamic_softmax"
    flags[flags.index("--epochs") + 1] = "1"
    argv = ["compare", *flags, "--mix", "dynamic=1", "--output_dir", str(tmp_path)]
    assert compare.main(argv) == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    assert list(rows) == ["dynamic", "dynamic_softmax", "mix"]
    for row in rows.values():
        assert np.isfinite(row["final_loss"]) and 0.0 <= row["recall@50"] <= 1.0
