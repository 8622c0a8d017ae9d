"""`negatives.CrossBatch`: the FIFO memory of past positives, against NumPy references."""

import functools
import json

import tfrs_negatives as tfn
from tfrs_negatives.experiments import compare, parse_mix
from tfrs_negatives.experiments.strategies import mix_counts
from tfrs_negatives.negatives import CrossBatch, InBatch

import numpy as np
import pytest
import tensorflow as tf
from tests_support import TINY_SYNTHETIC, TwoTower, interactions

N_ITEMS, DIM, MEMORY = 12, 4, 4
#: Three consecutive batches of positives (ids repeat across and within batches).
STEPS = [np.array([0, 3, 5]), np.array([3, 7, 9]), np.array([1, 9, 11])]


def _fixtures(seed=0):
    """Per-step item tables (the tower changes between steps), queries and the batch q."""
    rng = np.random.default_rng(seed)
    tables = rng.normal(size=(len(STEPS), N_ITEMS, DIM)).astype(np.float32)
    queries = rng.normal(size=(len(STEPS), 3, DIM)).astype(np.float32)
    q = rng.uniform(0.02, 0.3, N_ITEMS).astype(np.float32)
    return tables, queries, q


def _reference_step(step, memory, q, mode, in_batch):
    """Sum over rows of the corrected softmax loss of one step, in float64.

    `step` is `(queries [B, D], positives [B], their embeddings [B, D])`; `memory` is
    the list of `(id, embedding)` the FIFO holds, in slot order; the
    unfilled slots are simply absent. Every slot is one draw from `q` as the batch's
    rows are: keep -> Q(j) = (B q + F q) / (B + F) = q(j); mask -> pi(j) =
    1 - (1 - q(j))^(B + F), with B = 3 batch draws (0 without InBatch) and F the
    filled slots.
    """
    queries, positives, emb = step
    b, f = len(positives), len(memory)
    draws = (b if in_batch else 0) + f
    mem_ids = np.array([i for i, _ in memory], np.int64)
    ids = np.concatenate([positives, mem_ids])
    vectors = np.concatenate([emb, np.array([e for _, e in memory]).reshape(f, DIM)])
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    p = q[ids].astype(np.float64)
    prob = p if mode == "keep" else 1.0 - (1.0 - p) ** draws
    if mode == "keep" and draws == 0:
        prob = np.zeros_like(p)
    logits = scores - np.log(np.maximum(prob, 1e-6))[None, :]
    active = [in_batch or j >= b for j in range(len(ids))]
    first = {}
    for j, item in enumerate(ids):
        if active[j]:
            first.setdefault(item, j)
    total = 0.0
    for i in range(b):
        terms = [logits[i, i]]
        for j in range(len(ids)):
            if j == i or not active[j] or ids[j] == positives[i]:
                continue  # own positive, not a column, accidental hit
            if mode == "mask" and first[ids[j]] != j:
                continue  # a later copy of an id
            terms.append(logits[i, j])
        total += np.log(np.exp(terms).sum()) - logits[i, i]
    return total


def _run_steps(task, tables, queries, step_fn=None):
    losses = []
    for t, positives in enumerate(STEPS):
        table = tf.constant(tables[t])
        args = (tf.constant(queries[t]), tf.gather(table, positives), tf.constant(positives))
        if step_fn is None:
            loss = task(args[0], args[1], candidate_ids=args[2], training=True)
        else:
            loss = step_fn(*args)
        losses.append(float(loss.numpy()))
    return losses


@pytest.mark.parametrize("mode", ["keep", "mask"])
@pytest.mark.parametrize("in_batch", [True, False])
def test_three_steps_match_numpy(mode, in_batch):
    # Step 0: the memory is empty, its 4 slots masked (the loss is in-batch only).
    # Step 1: slots 0-2 hold step 0's positives [0, 3, 5] with step 0's embeddings; slot 3
    # is masked; id 3 is an accidental hit of row 0 (and, masking duplicates, a later copy);
    # every slot is corrected as one more draw from q. Step 2: 6 writes wrapped around the
    # 4 slots: [7, 9, 5, 3] (7, 9 and 3 from step 1; 5 from step 0), 9 a hit of row 1.
    tables, queries, q = _fixtures()
    source = CrossBatch(memory=MEMORY)
    negatives = [InBatch(), source] if in_batch else [source]
    frequency = tfn.StaticProbabilities(np.arange(N_ITEMS), q)
    task = tfn.CorrectedRetrieval(frequency=frequency, negatives=negatives, duplicates=mode)
    losses = _run_steps(task, tables, queries)
    expected = _expected_losses_in_slots(tables, queries, q, mode, in_batch)
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    np.testing.assert_array_equal(source.ids.numpy(), [11, 9, 1, 9])  # 9 writes, 4 slots
    for t in (1, 2):  # the memory's columns changed the loss
        assert losses[t] != pytest.approx(_no_memory_loss((tables, queries, q), mode, in_batch, t))


def _ring_contents(history):
    """`(id, embedding)` per filled slot of a MEMORY-slot ring written in `history` order."""
    slots = [None] * MEMORY
    for k, entry in enumerate(history):
        slots[k % MEMORY] = entry
    return [s for s in slots if s is not None]


def _expected_losses_in_slots(tables, queries, q, mode, in_batch):
    history, expected = [], []
    for t, positives in enumerate(STEPS):
        emb = tables[t][positives]
        memory = _ring_contents(history)
        expected.append(_reference_step((queries[t], positives, emb), memory, q, mode, in_batch))
        history.extend(zip(positives, emb))
    return expected


def _no_memory_loss(fixtures, mode, in_batch, t):
    tables, queries, q = fixtures
    return _reference_step((queries[t], STEPS[t], tables[t][STEPS[t]]), [], q, mode, in_batch)


def _training_call(task, queries, candidates, ids):
    return task(queries, candidates, candidate_ids=ids, training=True)


def test_tf_function_and_xla_off_give_the_same_losses():
    tables, queries, q = _fixtures(1)
    expected = _expected_losses_in_slots(tables, queries, q, "mask", True)
    for jit_compile in (True, False):
        source = CrossBatch(memory=MEMORY)
        task = tfn.CorrectedRetrieval(
            frequency=tfn.StaticProbabilities(np.arange(N_ITEMS), q),
            negatives=[InBatch(), source],
            jit_compile=jit_compile,
        )
        step = tf.function(functools.partial(_training_call, task))
        losses = _run_steps(task, tables, queries, step_fn=step)
        np.testing.assert_allclose(losses, expected, rtol=1e-5)
        traces = step.experimental_get_tracing_count()  # 2 when the first creates variables
        _run_steps(task, tables, queries, step_fn=step)
        assert step.experimental_get_tracing_count() == traces  # the memory's state: no retrace


def test_fifo_order_and_wrap_around():
    source = CrossBatch(memory=5, dim=2)
    vectors = lambda ids: np.stack([ids, -ids], 1).astype(np.float32)  # noqa: E731
    for ids in (np.array([1, 2, 3]), np.array([4, 5, 6])):
        source.enqueue(tf.constant(ids), tf.constant(vectors(ids)), tf.constant(ids / 10.0))
    # 6 writes in a ring of 5: slot 0 was overwritten by the 6th (id 6).
    np.testing.assert_array_equal(source.ids.numpy(), [6, 2, 3, 4, 5])
    np.testing.assert_allclose(source.embeddings.numpy(), vectors(np.array([6, 2, 3, 4, 5])))
    np.testing.assert_allclose(source.probabilities.numpy(), [0.6, 0.2, 0.3, 0.4, 0.5])
    np.testing.assert_array_equal(source.written_step.numpy(), [1, 0, 0, 1, 1])
    assert (source.pointer.numpy(), source.filled.numpy(), source.steps.numpy()) == (1, 5, 2)
    # Ages as read by step 2: 1 for step 1's entries (3 of them), 2 for step 0's (2).
    staleness = {k: float(v) for k, v in source.staleness().items()}
    assert staleness == {"mean_age_steps": pytest.approx(7 / 5), "max_age_steps": 2.0,
                         "filled": 5.0}  # fmt: skip
    # A batch larger than the memory writes its last 5 rows, from the pointer on.
    big = np.arange(10, 17)
    source.enqueue(tf.constant(big), tf.constant(vectors(big)))
    np.testing.assert_array_equal(source.ids.numpy(), [16, 12, 13, 14, 15])
    np.testing.assert_allclose(source.probabilities.numpy(), 0.0)
    assert source.pointer.numpy() == 1


def test_unfilled_slots_are_masked_and_evaluation_does_not_enqueue():
    tables, queries, q = _fixtures(2)
    source = CrossBatch(memory=MEMORY)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StaticProbabilities(np.arange(N_ITEMS), q), negatives=[InBatch(), source]
    )
    call = lambda t, training: task(  # noqa: E731
        tf.constant(queries[t]),
        tf.constant(tables[t][STEPS[t]]),
        candidate_ids=tf.constant(STEPS[t]),
        training=training,
    )
    assert source.active_draws().numpy() == 0
    call(0, False)  # evaluation: nothing written
    assert source.filled.numpy() == 0 and source.steps.numpy() == 0
    call(0, True)
    assert source.active_draws().numpy() == 3
    # Slot 3 is not filled: the loss equals the reference with 3 memory entries only.
    loss = call(1, False)
    memory = list(zip(STEPS[0], tables[0][STEPS[0]]))
    step = (queries[1], STEPS[1], tables[1][STEPS[1]])
    expected = _reference_step(step, memory, q, "mask", True)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    # The curriculum's active_count caps the slots read.
    source.active_count.assign(1)
    loss = call(1, False)
    expected = _reference_step(step, memory[:1], q, "mask", True)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


def _model_and_task(memory=8):
    source = CrossBatch(memory=memory)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=64), negatives=[InBatch(), source]
    )
    return TwoTower(task), source


def test_no_gradient_reaches_the_memory():
    model, source = _model_and_task(memory=6)
    first = {"user": tf.constant([0, 1, 2]), "item": tf.constant([10, 11, 12], tf.int64)}
    second = {"user": tf.constant([3, 4, 5]), "item": tf.constant([1, 2, 3], tf.int64)}
    model.compute_loss(first, training=True)  # the memory now holds items 10-12
    with tf.GradientTape() as tape:
        loss = model.compute_loss(second, training=True)
    variables = [model.item_tower.embeddings, model.query_tower.embeddings, source.embeddings]
    item_grad, query_grad, memory_grad = tape.gradient(loss, variables)
    assert memory_grad is None  # the memory is read as a value, not a differentiable input
    item_grad = tf.convert_to_tensor(item_grad).numpy()
    # Items 10-12 are only in the memory: no gradient reaches their tower rows.
    np.testing.assert_array_equal(item_grad[10:13], 0.0)
    assert np.abs(item_grad[1:4]).sum() > 0
    # The memory's columns do change the query gradient (they are negatives).
    empty_model, _ = _model_and_task(memory=6)
    empty_model.compute_loss(second, training=False)  # builds the towers, writes nothing
    for tower in ("query_tower", "item_tower"):
        getattr(empty_model, tower).set_weights(getattr(model, tower).get_weights())
    with tf.GradientTape() as tape:
        plain = empty_model.compute_loss(second, training=False)
    plain_grad = tape.gradient(plain, empty_model.query_tower.embeddings)
    assert not np.allclose(
        tf.convert_to_tensor(query_grad).numpy(), tf.convert_to_tensor(plain_grad).numpy()
    )
    assert source.embeddings not in model.trainable_variables


def test_short_fit_is_finite_and_fills_the_memory():
    model, source = _model_and_task(memory=100)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    history = model.fit(interactions(), epochs=2, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and len(losses) == 2
    assert f"negatives/{source.name}/mass" in history.history
    assert source.steps.numpy() == 8 and source.filled.numpy() == 100  # 4 batches of 64
    model.evaluate(interactions(), verbose=0)
    assert source.steps.numpy() == 8  # evaluation does not write
    # The last entries were written by the last step (step 7): age 1 at the next read.
    assert float(source.staleness()["max_age_steps"]) == 2.0


def test_drift_matches_numpy():
    source = CrossBatch(memory=4, dim=DIM)
    rng = np.random.default_rng(5)
    old = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    new = old + rng.normal(scale=0.3, size=old.shape).astype(np.float32)
    ids = np.array([2, 7, 9])
    source.enqueue(tf.constant(ids), tf.constant(old[ids]))
    drift = source.drift(lambda i: tf.gather(new, i))
    a, b = old[ids].astype(np.float64), new[ids].astype(np.float64)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    l2 = np.linalg.norm(a - b, axis=1)
    np.testing.assert_allclose(float(drift["mean_cosine_distance"]), (1 - cosine).mean(), 1e-5)
    np.testing.assert_allclose(float(drift["mean_l2"]), l2.mean(), rtol=1e-5)
    relative = l2.mean() / np.linalg.norm(b, axis=1).mean()
    np.testing.assert_allclose(float(drift["relative_l2"]), relative, rtol=1e-5)
    assert int(drift["compared"]) == 3
    # features_of_ids maps ids to the tower's inputs; `sample` limits the slots compared.
    drift = source.drift(lambda f: tf.gather(new, f["item"]), lambda i: {"item": i}, sample=2)
    np.testing.assert_allclose(float(drift["mean_l2"]), l2[:2].mean(), rtol=1e-5)


def test_checkpoint_restores_the_memory(tmp_path):
    tables, queries, q = _fixtures(3)
    frequency = tfn.StaticProbabilities(np.arange(N_ITEMS), q)
    source = CrossBatch(memory=MEMORY)
    task = tfn.CorrectedRetrieval(frequency=frequency, negatives=[InBatch(), source])
    _run_steps(task, tables, queries)
    path = tf.train.Checkpoint(task=task).save(str(tmp_path / "ckpt"))
    # A fresh task whose memory is built lazily at its first call (deferred restore).
    restored = CrossBatch(memory=MEMORY)
    clone = tfn.CorrectedRetrieval(frequency=frequency, negatives=[InBatch(), restored])
    tf.train.Checkpoint(task=clone).restore(path)
    args = (tf.constant(queries[0]), tf.constant(tables[0][STEPS[0]]))
    ids = tf.constant(STEPS[0])
    loss = clone(*args, candidate_ids=ids, training=False)
    for name in ("ids", "embeddings", "probabilities", "written_step", "pointer", "filled"):
        np.testing.assert_array_equal(
            getattr(restored, name).numpy(), getattr(source, name).numpy(), err_msg=name
        )
    assert restored.steps.numpy() == 3
    np.testing.assert_allclose(
        loss.numpy(), task(*args, candidate_ids=ids, training=False).numpy(), rtol=1e-6
    )
    # Each stored probability is the q of its id when written.
    np.testing.assert_allclose(restored.probabilities.numpy(), q[restored.ids.numpy()])


@pytest.mark.parametrize("memory", [0, -3, 2.5, True, "4", None])
def test_bad_memory_is_refused(memory):
    with pytest.raises(ValueError, match=r"`memory` must be an integer >= 1, got"):
        CrossBatch(memory=memory)


def test_other_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"`dim` must be an integer >= 1, got 0"):
        CrossBatch(memory=3, dim=0)
    source = CrossBatch(memory=3, dim=5)
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StaticProbabilities(np.arange(4), np.full(4, 0.25)), negatives=[source]
    )
    with pytest.raises(ValueError, match=r"dimension 5 \(`dim`\), got .* dimension 4"):
        task(tf.ones([2, 4]), tf.ones([2, 4]), candidate_ids=tf.constant([0, 1]), training=True)
    no_frequency = tfn.CorrectedRetrieval(negatives=[CrossBatch(memory=3)])
    with pytest.raises(ValueError, match=r"give the task a `frequency` estimator"):
        no_frequency(tf.ones([2, 4]), tf.ones([2, 4]), candidate_ids=tf.constant([0, 1]))


def test_several_replicas_are_refused_with_a_clear_error():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        task = tfn.CorrectedRetrieval(
            frequency=tfn.StaticProbabilities(np.arange(4), np.full(4, 0.25)),
            negatives=[InBatch(), CrossBatch(memory=3, dim=4)],
        )

    @tf.function
    def step():
        return strategy.run(
            lambda: task(tf.ones([2, 4]), tf.ones([2, 4]), candidate_ids=tf.constant([0, 1]))
        )

    with pytest.raises(NotImplementedError, match=r"CrossBatch does not support Mirrored"):
        step()


def test_get_config_round_trip():
    source = CrossBatch(memory=6, dim=4, weight=0.5, name="xbm")
    config = source.get_config()
    assert {k: config[k] for k in ("memory", "dim", "weight", "name")} == {
        "memory": 6, "dim": 4, "weight": 0.5, "name": "xbm"
    }  # fmt: skip
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(source))
    assert isinstance(clone, CrossBatch) and clone.get_config() == config
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=16),
        negatives=[InBatch(), CrossBatch(memory=5)],
    )
    rebuilt = tfn.CorrectedRetrieval.from_config(task.get_config())
    assert rebuilt.get_config() == task.get_config()
    assert isinstance(rebuilt.negatives[1], CrossBatch) and rebuilt.negatives[1].memory == 5


def test_compare_trains_the_cross_batch_strategy_and_mix(tmp_path, capsys):
    flags = list(TINY_SYNTHETIC)
    flags[flags.index("--strategies") + 1] = "cross_batch"
    flags[flags.index("--epochs") + 1] = "1"
    # `--mix cross_batch=1`: the memory without in-batch negatives (sampled softmax).
    argv = ["compare", *flags, "--mix", "cross_batch=1", "--output_dir", str(tmp_path)]
    code = compare.main(argv)
    assert code == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    assert list(rows) == ["cross_batch", "mix"]
    for row in rows.values():
        assert np.isfinite(row["final_loss"]) and 0.0 <= row["recall@50"] <= 1.0
    assert parse_mix("inbatch=1,cross_batch=1") == {"inbatch": 1.0, "cross_batch": 1.0}
    assert mix_counts({"inbatch": 1, "cross_batch": 1}, 32) == {"inbatch": -1, "cross_batch": 32}


def test_mixed_precision_fit_stores_float32_and_stays_finite():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, source = _model_and_task(memory=32)
        model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
        history = model.fit(interactions(), epochs=1, verbose=0)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert model.item_tower.compute_dtype == "float16"
    assert source.embeddings.dtype == tf.float32 and source.filled.numpy() == 32
    assert np.isfinite(history.history["loss"][0])
    stored = source.embeddings.numpy()
    current = model.item_tower(tf.constant(source.ids.numpy())).numpy().astype(np.float32)
    assert 0 < np.abs(stored - current).max() < 0.3  # written one Adagrad(0.1) step ago
