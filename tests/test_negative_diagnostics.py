"""Negative diagnostics of `CorrectedRetrieval`: NumPy references, Keras plumbing, the parser."""

import tfrs_negatives as tfn
from tfrs_negatives import ops
from tfrs_negatives.metrics import negative_diagnostics_from_logs
from tfrs_negatives.metrics.negative_diagnostics import DiagnosticMean
from tfrs_negatives.mining import HardNegativeTable, KnownPositives
from tfrs_negatives.negatives import InBatch, Mined, Uniform
from tfrs_negatives.ops.diagnostics import rows_logits

import numpy as np
import pytest
import tensorflow as tf
from tests_support import NUM_ITEMS, FixedDraws, TwoTower, interactions

N_ITEMS, DIM = 12, 4
STATS = ("mass", "gap", "masked", "distinct")


def _logged(task):
    """`{metric name: value}` of the task's diagnostic metrics."""
    return {m.name: float(m.result()) for m in task.metrics if m.name.startswith("negatives/")}


def _reference(scores, logits, excluded, rows, blocks):
    """Per-block statistics over `rows`, from float64 matrices, with loops (no vectorising).

    `scores`/`logits` `[B, N]`: raw scores and corrected logits, row i's positive in
    column i; `excluded` `[B, N]` bool (never True at (i, i)); `blocks`:
    `{name: column indices}`.
    """
    out = {name: dict(mass=0.0, gap_sum=0.0, valid=0, masked=0, entries=0) for name in blocks}
    positive_mass = 0.0
    for i in rows:
        kept = [j for j in range(logits.shape[1]) if j == i or not excluded[i, j]]
        denominator = sum(np.exp(logits[i, j]) for j in kept)
        positive_mass += np.exp(logits[i, i]) / denominator
        for name, columns in blocks.items():
            for j in columns:
                if j == i:
                    continue
                o = out[name]
                o["entries"] += 1
                if excluded[i, j]:
                    o["masked"] += 1
                else:
                    o["mass"] += np.exp(logits[i, j]) / denominator
                    o["gap_sum"] += scores[i, i] - scores[i, j]
                    o["valid"] += 1
    result = {}
    for name, o in out.items():
        result[name] = dict(
            mass=o["mass"] / len(rows),
            gap=o["gap_sum"] / o["valid"],
            masked=o["masked"] / o["entries"],
        )
    result["positive"] = dict(mass=positive_mass / len(rows))
    return result


def _check(task, expected, distinct):
    logged = _logged(task)
    for source, stats in expected.items():
        for stat, value in stats.items():
            assert logged[f"negatives/{source}/{stat}"] == pytest.approx(
                value, rel=1e-4, abs=1e-6
            ), (
                source,
                stat,
            )
    for source, value in distinct.items():
        assert logged[f"negatives/{source}/distinct"] == value
    total = sum(v for k, v in logged.items() if k.endswith("/mass"))
    assert total == pytest.approx(1.0, abs=1e-5)  # positives + every source's mass


@pytest.mark.parametrize(
    "mode, correction, temperature, stride, jit_compile",
    [
        ("keep", "logq", None, 1, True),
        ("mask", "logq", None, 1, False),
        ("mask", "positive_uncorrected", 0.5, 1, True),
        ("keep", "logq", 2.0, 2, True),
        ("mask", "logq", None, 4, False),
    ],
)
def test_in_batch_and_uniform_match_numpy(mode, correction, temperature, stride, jit_compile):
    rng = np.random.default_rng(0)
    table = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    p_batch = rng.uniform(0.02, 0.3, N_ITEMS)
    pos = np.array([0, 3, 3, 5, 7, 0, 9, 3])  # repeats: accidental hits in the batch
    draws = np.array([3, 9, 9, 11, 0])  # hits the positives, repeats itself
    queries = rng.normal(size=(len(pos), DIM)).astype(np.float32)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StaticProbabilities(np.arange(N_ITEMS), p_batch),
        negatives=[InBatch(name="batch"), FixedDraws(np.arange(N_ITEMS), draws, name="draws")],
        duplicates=mode,
        correction=correction,
        temperature=temperature,
        jit_compile=jit_compile,
        diagnostics_stride=stride,
    )
    loss = task(
        tf.constant(queries),
        tf.constant(table[pos]),
        candidate_ids=tf.constant(pos),
        candidate_tower=lambda ids: tf.gather(table, ids),
        training=True,
    )
    assert np.isfinite(loss.numpy())

    b, k = len(pos), len(draws)
    ids = np.concatenate([pos, draws])
    scores = queries.astype(np.float64) @ table[ids].astype(np.float64).T
    tempered = scores / (temperature or 1.0)
    if mode == "keep":  # expected share of the mixture (Hansen-Hurwitz)
        q = (b * p_batch[ids] + k / N_ITEMS) / (b + k)
    else:  # inclusion probability (Horvitz-Thompson)
        q = 1 - (1 - p_batch[ids]) ** b * (1 - 1 / N_ITEMS) ** k
    logits = tempered - np.log(q)[None, :]
    if correction == "positive_uncorrected":
        logits = logits + np.log(1 - q[:b])[:, None]
        logits[np.arange(b), np.arange(b)] = tempered[np.arange(b), np.arange(b)]
    first = {}
    for j, item in enumerate(ids):
        first.setdefault(item, j)
    excluded = np.zeros(scores.shape, bool)
    for i in range(b):
        for j in range(b + k):
            if j == i:
                continue
            hit = ids[j] == pos[i]
            duplicate = mode == "mask" and first[ids[j]] != j
            excluded[i, j] = hit or duplicate
    expected = _reference(
        scores,
        logits,
        excluded,
        rows=range(0, b, stride),
        blocks={"batch": range(b), "draws": range(b, b + k)},
    )
    assert expected["batch"]["masked"] > 0 and expected["draws"]["masked"] > 0
    _check(task, expected, distinct={"batch": len(set(pos)), "draws": len(set(draws))})


def test_mined_source_matches_numpy():
    rng = np.random.default_rng(1)
    n_items = 10
    emb = rng.normal(size=(n_items, DIM)).astype(np.float32)
    pos = np.array([0, 1, 1, 4])
    users = np.array([7, 8, 9, 7])
    queries = rng.normal(size=(4, DIM)).astype(np.float32)
    table = HardNegativeTable(np.arange(n_items), 3)
    neighbours = np.array([[2, 3, 0]] + [[1, 5, 6]] * 3 + [[5, 6, -1]] + [[0, 1, 2]] * 5)
    table.assign(neighbours, np.array([3, 3, 3, 3, 2, 3, 3, 3, 3, 3]))
    mined = Mined(
        table,
        np.arange(n_items),
        count=2,
        sample="top",
        known_positives=KnownPositives([7], [3]),  # user 7 knows item 3
        margin=0.1,
        name="hard",
    )
    task = tfn.CorrectedRetrieval(
        negatives=[InBatch(name="batch"), mined], correction=None, diagnostics_stride=1
    )
    task(
        tf.constant(queries),
        tf.constant(emb[pos]),
        candidate_ids=tf.constant(pos),
        candidate_tower=lambda ids: tf.gather(emb, ids),
        query_ids=tf.constant(users),
        training=True,
    )
    full = queries.astype(np.float64) @ emb.T.astype(np.float64)
    b, m = 4, 2
    row_items = np.array([neighbours[p][:m] for p in pos])  # "top": the window's first 2
    scores = np.zeros((b, b + m))
    excluded = np.zeros((b, b + m), bool)
    for i in range(b):
        s_pos = full[i, pos[i]]
        for j in range(b):
            scores[i, j] = full[i, pos[j]]
            excluded[i, j] = j != i and pos[j] == pos[i]
        for t, item in enumerate(row_items[i]):
            scores[i, b + t] = full[i, item]
            excluded[i, b + t] = (
                item == pos[i]
                or (users[i] == 7 and item == 3)
                or full[i, item] > s_pos - 0.1 * abs(s_pos)
            )
    expected = _reference(
        scores, scores, excluded, range(b), {"batch": range(b), "hard": range(b, b + m)}
    )
    assert expected["hard"]["masked"] > 0
    _check(task, expected, distinct={"batch": 3, "hard": len(set(row_items.ravel()))})


@pytest.mark.parametrize("correction", ["logq", "positive_uncorrected"])
def test_rows_logits_of_every_row_are_corrected_logits(correction):
    rng = np.random.default_rng(2)
    b, n, extra = 5, 9, 3  # extra: per-row columns after the shared ones
    scores = tf.constant(rng.normal(size=(b, n + extra)).astype(np.float32))
    inputs = ops.CorrectionInputs(
        probabilities=tf.constant(rng.uniform(0.01, 0.9, n + extra).astype(np.float32)),
        method=correction,
        clip_min=1e-6,
        strength=0.7,
        positive_ids=tf.constant([1, 2, 1, 4, 5], tf.int64),
        candidate_ids=tf.constant([1, 2, 1, 4, 5, 2, 9, 1, 3], tf.int64),
        column_excluded=tf.constant(rng.random(n + extra) < 0.3),
        column_log_weight=tf.constant(rng.normal(size=n + extra).astype(np.float32)),
        score_mask=tf.constant(rng.random((b, n + extra)) < 0.8),
    )
    want = ops.corrected_logits(scores, inputs)
    _, got, _, own = rows_logits(scores, tf.range(b), inputs)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(own.numpy(), np.eye(b, n + extra, dtype=bool))
    # Rows 1 and 3 alone: the same rows of the whole batch's logits.
    _, some, _, _ = rows_logits(scores, tf.constant([1, 3]), inputs)
    np.testing.assert_array_equal(some.numpy(), want.numpy()[[1, 3]])


def _task(diagnostics=True, **kwargs):
    return tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=256),
        negatives=[InBatch(), Uniform(np.arange(NUM_ITEMS), 16, seed=0)],
        diagnostics=diagnostics,
        **kwargs,
    )


@pytest.mark.parametrize("jit_compile", [True, False])
def test_loss_is_the_same_with_diagnostics_on_and_off(jit_compile):
    batch = next(iter(interactions(seed=4)))
    losses = []
    for diagnostics in (True, False):
        tf.keras.utils.set_random_seed(0)
        model = TwoTower(_task(diagnostics, jit_compile=jit_compile))
        losses.append(model.compute_loss(batch, training=True).numpy())
    assert losses[0] == losses[1]


def test_custom_loss_path_logs_the_same_diagnostics():
    batch = next(iter(interactions(seed=6)))
    results = []
    for loss in (None, tf.keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum")):
        tf.keras.utils.set_random_seed(0)
        model = TwoTower(_task(loss=loss))
        model.compute_loss(batch, training=True)
        results.append(list(_logged(model.task).values()))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_off_adds_no_metric_and_fit_logs_them_when_on():
    tf.keras.utils.set_random_seed(0)
    off = TwoTower(_task(False))
    off.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    history = off.fit(interactions(), epochs=1, verbose=0)
    assert not [m for m in off.metrics if m.name.startswith("negatives/")]
    assert not [k for k in history.history if k.startswith("negatives/")]
    assert negative_diagnostics_from_logs(history) == {}

    on = TwoTower(_task())
    on.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    history = on.fit(interactions(), epochs=2, verbose=0, validation_data=interactions(seed=1))
    in_batch, uniform = (s.name for s in on.task.negatives)
    names = [f"negatives/{s}/{stat}" for s in (in_batch, uniform) for stat in STATS]
    for name in names + ["negatives/positive/mass"]:
        assert len(history.history[name]) == 2 and np.all(np.isfinite(history.history[name]))
        assert np.isnan(history.history["val_" + name]).all()  # not measured in evaluation
    parsed = negative_diagnostics_from_logs(history)
    assert list(parsed) == [in_batch, uniform, "positive"]
    assert sum(s["mass"] for s in parsed.values()) == pytest.approx(1.0, abs=1e-5)
    assert parsed[uniform]["distinct"] <= 16 and parsed[in_batch]["distinct"] <= 64
    assert 0 < parsed[in_batch]["masked"] < 1  # Zipf positives: many repeats


def test_tf_function_equals_eager_and_training_false_updates_nothing():
    batch = next(iter(interactions(seed=5)))
    results = []
    for wrap in (lambda f: f, tf.function):
        tf.keras.utils.set_random_seed(0)
        model = TwoTower(_task())
        wrap(lambda b, model=model: model.compute_loss(b, training=True))(batch)
        results.append(_logged(model.task))
    # Keras numbers the sources of the second model (`in_batch_1`, ...): compare in order.
    assert len(results[0]) == len(results[1]) == 9
    for (name, value), again in zip(results[0].items(), results[1].values()):
        assert again == pytest.approx(value, rel=1e-5), name

    model = TwoTower(_task())
    model.compute_loss(batch, training=False)
    assert all(np.isnan(v) for v in _logged(model.task).values())


def test_two_sources_of_one_class_get_their_own_metrics():
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=256),
        negatives=[InBatch(), Uniform(np.arange(NUM_ITEMS), 4), Uniform(np.arange(NUM_ITEMS), 8)],
    )
    names = [m.name for m in task.metrics]
    assert len(names) == len(set(names)) == 3 * 4 + 1
    with pytest.raises(ValueError, match="distinct names"):
        tfn.CorrectedRetrieval(
            negatives=[
                InBatch(),
                Uniform(np.arange(4), 2, name="u"),
                Uniform(np.arange(4), 2, name="u"),
            ]
        )
    tfn.CorrectedRetrieval(  # the same names are fine without diagnostics
        negatives=[
            InBatch(),
            Uniform(np.arange(4), 2, name="u"),
            Uniform(np.arange(4), 2, name="u"),
        ],
        diagnostics=False,
    )
    with pytest.raises(ValueError, match="reserve"):
        tfn.CorrectedRetrieval(negatives=[InBatch(name="positive")], diagnostics=True)


def test_get_config_round_trip():
    for kwargs in (dict(), dict(diagnostics=False), dict(diagnostics_stride=4)):
        task = _task(**kwargs)
        config = task.get_config()
        again = tfn.CorrectedRetrieval.from_config(config)
        assert again.get_config() == config
        assert again.diagnostics == task.diagnostics
        assert again.diagnostics_stride == task.diagnostics_stride
        assert len(again.metrics) == len(task.metrics)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(diagnostics="yes"), TypeError, "`diagnostics` must be True or False"),
        (dict(diagnostics_stride=0), ValueError, "`diagnostics_stride` must be an integer >= 1"),
        (dict(diagnostics_stride=2.5), ValueError, "got 2.5"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tfn.CorrectedRetrieval(**kwargs)


def test_negative_diagnostics_from_logs():
    history = {
        "negatives/in_batch/mass": [0.7, 0.6],
        "negatives/in_batch/gap": [1.0, 2.0],
        "negatives/uniform_2/mass": [0.2, 0.3],
        "negatives/uniform_2/distinct": [1000.0, 1010.0],
        "negatives/positive/mass": [0.1, 0.1],
        "val_negatives/in_batch/mass": [float("nan"), float("nan")],
        "negatives/in_batch/other": [5.0, 5.0],  # not a diagnostic statistic
        "factorized_top_k/top_10_categorical_accuracy": [0.1, 0.2],
        "loss": [3.0, 2.0],
    }
    assert negative_diagnostics_from_logs(history) == {
        "in_batch": {"mass": 0.6, "gap": 2.0},
        "uniform_2": {"mass": 0.3, "distinct": 1010.0},
        "positive": {"mass": 0.1},
    }
    assert negative_diagnostics_from_logs(history, epoch=0)["in_batch"] == {"mass": 0.7, "gap": 1.0}
    validation = negative_diagnostics_from_logs(history, prefix="val_")
    assert list(validation) == ["in_batch"] and np.isnan(validation["in_batch"]["mass"])
    # Callback logs hold scalars (floats or tensors).
    logs = {"negatives/in_batch/masked": tf.constant(0.25), "loss": 1.0}
    assert negative_diagnostics_from_logs(logs) == {"in_batch": {"masked": 0.25}}
    assert negative_diagnostics_from_logs({"loss": 1.0}) == {}
    with pytest.raises(TypeError, match="`logs` must be a dict"):
        negative_diagnostics_from_logs([0.1])
    with pytest.raises(IndexError, match="`epoch` 5 is out of range"):
        negative_diagnostics_from_logs(history, epoch=5)


def test_diagnostic_mean_is_nan_before_any_update():
    metric = DiagnosticMean(name="negatives/x/mass")
    assert np.isnan(metric.result().numpy())
    metric.update_state(0.5)
    metric.update_state(1.0, sample_weight=0.0)  # a step that does not count
    assert metric.result().numpy() == pytest.approx(0.5)


def test_diagnostic_mean_of_steps_without_entries_is_zero_not_nan():
    metric = DiagnosticMean(name="negatives/x/gap")
    metric.update_state(2.0, sample_weight=0.0)  # measured, but nothing to average
    assert metric.result().numpy() == 0.0
    metric.update_state(3.0)
    assert metric.result().numpy() == pytest.approx(3.0)  # the empty step does not count
    metric.reset_state()
    assert np.isnan(metric.result().numpy())


def test_source_held_at_count_zero_logs_zero_not_nan():
    model = TwoTower(_task())
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    uniform = model.task.negatives[1]
    curriculum = tfn.callbacks.NegativeCurriculum({uniform: {"count": [(0, 0), (100, 0)]}})
    history = model.fit(interactions(), epochs=2, verbose=0, callbacks=[curriculum])
    for statistic in STATS:
        values = history.history[f"negatives/{uniform.name}/{statistic}"]
        assert values == [0.0, 0.0], statistic  # no entry: no mass, gap, mask or distinct
    in_batch = history.history[f"negatives/{model.task.negatives[0].name}/gap"]
    assert np.all(np.isfinite(in_batch)) and min(in_batch) != 0.0
