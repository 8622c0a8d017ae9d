"""`CorrectedRetrieval` with sampled sources: NumPy references of the mixture and masks."""

from typing import NamedTuple, Optional

import tfrs_negatives as tfn
from tfrs_negatives.negatives import FullCatalogue, InBatch, Uniform

import numpy as np
import pytest
import tensorflow as tf
from tests_support import FixedDraws

N_ITEMS, DIM = 12, 4


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    p_batch = rng.uniform(0.02, 0.3, N_ITEMS).astype(np.float32)
    frequency = tfn.StaticProbabilities(np.arange(N_ITEMS), p_batch)
    return rng, table, p_batch, frequency


class Case(NamedTuple):
    """A hand-built batch: `[B, D]` queries, the `[N, D]` item table, `[B]` positive ids,
    `[K]` sampled ids, `[N]` batch probabilities of the items, and optional `[B + K]`
    candidate weights (1 when `None`)."""

    queries: np.ndarray
    table: np.ndarray
    pos: np.ndarray
    draws: np.ndarray
    p_batch: np.ndarray
    weights: Optional[np.ndarray] = None


def _reference(case, mode, in_batch=True, correction="logq"):
    """Sum over rows of the corrected softmax loss, in float64."""
    queries, table, pos, draws, p_batch, weights = case
    b, k = len(pos), len(draws)
    ids = np.concatenate([pos, draws])
    emb = table[ids].astype(np.float64)
    scores = queries.astype(np.float64) @ emb.T
    m_batch = b if in_batch else 0
    if mode == "keep":
        q = (m_batch * p_batch[ids] + k / N_ITEMS) / (m_batch + k)
    else:
        q = 1 - (1 - p_batch[ids]) ** m_batch * (1 - 1 / N_ITEMS) ** k
    logits = scores - np.log(q)[None, :]
    if correction == "positive_uncorrected":
        logits = logits + np.log(1 - q[:b])[:, None]
        logits[np.arange(b), np.arange(b)] = scores[np.arange(b), np.arange(b)]
    weights = np.ones(len(ids)) if weights is None else weights
    total = 0.0
    active = [(in_batch or j >= b) and weights[j] > 0 for j in range(len(ids))]
    seen_first = {}
    for j, item in enumerate(ids):
        if active[j]:
            seen_first.setdefault(item, j)
    for i in range(b):
        terms = [logits[i, i]]
        for j in range(len(ids)):
            if j == i or ids[j] == pos[i]:
                continue  # own positive / accidental hit
            if j < b and not in_batch:
                continue
            if mode == "mask" and seen_first[ids[j]] != j:
                continue
            if weights[j] == 0:
                continue
            terms.append(logits[i, j] + np.log(weights[j]))
        total += np.log(np.exp(terms).sum()) - logits[i, i]
    return total


@pytest.mark.parametrize("mode", ["keep", "mask"])
@pytest.mark.parametrize("in_batch", [True, False])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_mixture_loss_matches_numpy(mode, in_batch, jit_compile):
    rng, table, p_batch, frequency = _setup()
    pos = np.array([0, 3, 3, 5, 7, 0])
    draws = np.array([3, 9, 9, 11, 0])  # overlaps the batch and itself
    queries = rng.normal(size=(len(pos), DIM)).astype(np.float32)
    negatives = [FixedDraws(np.arange(N_ITEMS), draws)]
    if in_batch:
        negatives.insert(0, InBatch())
    task = tfn.CorrectedRetrieval(
        frequency=frequency, negatives=negatives, duplicates=mode, jit_compile=jit_compile
    )
    loss = task(
        tf.constant(queries),
        tf.constant(table[pos]),
        candidate_ids=tf.constant(pos),
        candidate_tower=lambda ids: tf.gather(table, ids),
    )
    expected = _reference(Case(queries, table, pos, draws, p_batch), mode, in_batch)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("mode", ["keep", "mask"])
@pytest.mark.parametrize("in_batch", [True, False])
def test_positive_uncorrected_variant_with_mixture(mode, in_batch):
    rng, table, p_batch, frequency = _setup(3)
    pos = np.array([0, 3, 3, 5])
    draws = np.array([3, 9, 11])
    queries = rng.normal(size=(len(pos), DIM)).astype(np.float32)
    negatives = [FixedDraws(np.arange(N_ITEMS), draws)]
    if in_batch:
        negatives.insert(0, InBatch())
    task = tfn.CorrectedRetrieval(
        frequency=frequency,
        negatives=negatives,
        duplicates=mode,
        correction="positive_uncorrected",
    )
    loss = task(
        tf.constant(queries),
        tf.constant(table[pos]),
        candidate_ids=tf.constant(pos),
        candidate_tower=lambda ids: tf.gather(table, ids),
    )
    case = Case(queries, table, pos, draws, p_batch)
    expected = _reference(case, mode, in_batch, correction="positive_uncorrected")
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


def test_active_count_and_weight_follow_their_variables():
    rng, table, p_batch, frequency = _setup(1)
    pos = np.array([1, 2, 4])
    draws = np.array([5, 6, 8, 10])
    queries = rng.normal(size=(3, DIM)).astype(np.float32)
    source = FixedDraws(np.arange(N_ITEMS), draws)
    task = tfn.CorrectedRetrieval(
        frequency=frequency, negatives=[InBatch(), source], duplicates="keep"
    )
    step = tf.function(
        lambda: task(
            tf.constant(queries),
            tf.constant(table[pos]),
            candidate_ids=tf.constant(pos),
            candidate_tower=lambda ids: tf.gather(table, ids),
        )
    )
    np.testing.assert_allclose(
        step().numpy(), _reference(Case(queries, table, pos, draws, p_batch), "keep"), rtol=1e-5
    )
    # Use only the first 2 draws at weight 0.5: same traced function, new values.
    source.active_count.assign(2)
    source.weight.assign(0.5)
    weights = np.array([1, 1, 1, 0.5, 0.5, 0, 0])
    expected = _reference(Case(queries, table, pos, draws[:2], p_batch, weights[:5]), "keep")
    np.testing.assert_allclose(step().numpy(), expected, rtol=1e-5)
    assert step.experimental_get_tracing_count() == 1


def test_full_catalogue_equals_full_softmax():
    rng, table, _, _ = _setup(2)
    pos = np.array([2, 2, 7, 1])
    queries = rng.normal(size=(4, DIM)).astype(np.float32)
    task = tfn.CorrectedRetrieval(negatives=[FullCatalogue(np.arange(N_ITEMS))])
    loss = task(
        tf.constant(queries),
        tf.constant(table[pos]),
        candidate_ids=tf.constant(pos),
        candidate_tower=lambda ids: tf.gather(table, ids),
    )
    logits = queries.astype(np.float64) @ table.T.astype(np.float64)
    expected = sum(np.log(np.exp(logits[i]).sum()) - logits[i, pos[i]] for i in range(4))
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)


def test_get_config_round_trip_with_sources():
    task = tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=64),
        negatives=[InBatch(), Uniform(["a", "b", "c"], 2, seed=1)],
        sampled_loss="gbce",
        gbce_calibration=0.5,
    )
    config = task.get_config()
    clone = tfn.CorrectedRetrieval.from_config(config)
    assert clone.get_config() == config
    assert clone.num_items == 3 and clone.duplicates == "mask" and clone._remove_accidental_hits


def test_bpr_loss_is_the_same_with_batch_metrics_on():
    # Batch metrics need the logits; the loss must still see the masks (BPR averages
    # over valid negatives only).
    rng, table, _, frequency = _setup(4)
    pos = np.array([0, 3, 3, 5])
    queries = tf.constant(rng.normal(size=(4, DIM)).astype(np.float32))
    kwargs = dict(
        frequency=frequency,
        negatives=[InBatch(), FixedDraws(np.arange(N_ITEMS), [3, 9])],
        sampled_loss="bpr",
    )
    plain = tfn.CorrectedRetrieval(**kwargs)
    metered = tfn.CorrectedRetrieval(
        batch_metrics=[tf.keras.metrics.AUC(from_logits=True)], **kwargs
    )
    args = (queries, tf.constant(table[pos]))
    call = dict(candidate_ids=tf.constant(pos), candidate_tower=lambda ids: tf.gather(table, ids))
    np.testing.assert_allclose(
        metered(*args, **call).numpy(), plain(*args, **call).numpy(), rtol=1e-6
    )
