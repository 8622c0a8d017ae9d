"""`PopularityStratifiedRecall` against NumPy references, TFRS' FactorizedTopK and in `evaluate`."""

import re
from typing import NamedTuple, Optional, Sequence, Set

import tfrs_negatives as tfn
from tfrs_negatives.evaluation import head_items, recall_at_k
from tfrs_negatives.metrics import PopularityStratifiedRecall, popularity_buckets

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs

N, D, B = 60, 8, 200


def _data(seed, n=N, d=D, b=B):
    rng = np.random.default_rng(seed)
    items = rng.normal(size=(n, d)).astype(np.float32)
    queries = rng.normal(size=(b, d)).astype(np.float32)
    true = rng.integers(0, n, b)
    train = np.minimum(rng.zipf(1.3, 2000) - 1, n - 1)
    counts = np.bincount(train, minlength=n)
    return rng, items, queries, true, train, counts


def _dataset(items, ids=None, batch=7):
    ids = np.arange(len(items)) if ids is None else ids
    return tf.data.Dataset.from_tensor_slices((ids, items)).batch(batch)


def _reference_buckets(counts, shares):
    """Loop version of the bucket rule: an item is in the first bucket whose cut-off
    the interactions of the items before it have not reached."""
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    cutoffs = np.cumsum(shares)[:-1] * sum(counts)
    bucket, before = np.zeros(len(counts), int), 0.0
    for item in order:
        bucket[item] = sum(before >= c - 1e-9 * sum(counts) for c in cutoffs)
        before += counts[item]
    return bucket


class Rows(NamedTuple):
    """The evaluated rows: `[B, D]` queries, `[B]` true item ids, optional `[B]` weights
    (1 when `None`) and `seen[b]`, the items removed for row b."""

    queries: np.ndarray
    true: np.ndarray
    weights: Optional[np.ndarray] = None
    seen: Optional[Sequence[Set[int]]] = None


def _reference(rows, items, item_bucket, names, ks):
    """NumPy recall@k of `rows` over the `[N, D]` items, overall and per bucket
    (`item_bucket`: `[N]` bucket index into `names`)."""
    queries, true, weights, seen = rows
    scores = queries.astype(np.float64) @ items.T.astype(np.float64)
    index = np.arange(len(true))
    competing = np.ones_like(scores, dtype=bool)
    if seen is not None:
        for row, items_seen in enumerate(seen):
            competing[row, list(items_seen)] = False
    competing[index, true] = False
    ranks = ((scores > scores[index, true][:, None]) & competing).sum(axis=1)
    weights = np.ones(len(true)) if weights is None else weights
    groups = {"": np.ones(len(true), bool)}
    groups.update({f"{name}_": item_bucket[true] == i for i, name in enumerate(names)})
    result = {}
    for prefix, members in groups.items():
        w = weights * members
        for k in ks:
            result[f"{prefix}recall@{k}"] = (w * (ranks < k)).sum() / w.sum() if w.sum() else 0.0
    return result


def _values(metric):
    prefix = metric.name + "/"
    return {name[len(prefix) :]: float(value) for name, value in metric.result().items()}


def _assert_matches(got, want):
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name


# Buckets.


def test_popularity_buckets_hand_worked():
    # Sorted counts 5, 3, 1, 1, 0 (total 10): the head reaches 50% with item 0, the
    # torso reaches 80% with item 1, the rest (and the never-seen item 4) is tail.
    np.testing.assert_array_equal(
        popularity_buckets([1, 3, 5, 0, 1], [0.5, 0.3, 0.2]), [2, 1, 0, 2, 2]
    )
    # Ten items of one interaction each: one per decile, despite 0.1 + 0.2 != 0.3.
    np.testing.assert_array_equal(popularity_buckets(np.ones(10), [0.1] * 10), np.arange(10))
    # An item holding 60% fills the first decile alone and leaves deciles 2-6 empty.
    bucket = popularity_buckets([60, 10, 10, 10, 10], [0.1] * 10)
    np.testing.assert_array_equal(bucket, [0, 6, 7, 8, 9])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_popularity_buckets_match_references(seed):
    _, _, _, _, train, counts = _data(seed)
    np.testing.assert_array_equal(popularity_buckets(counts, [0.5, 0.5]) == 0, head_items(train, N))
    for shares in ([0.5, 0.3, 0.2], [0.1] * 10, [0.2, 0.05, 0.75]):
        np.testing.assert_array_equal(
            popularity_buckets(counts, shares), _reference_buckets(counts, shares)
        )


# Against FactorizedTopK and NumPy.


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_overall_equals_factorized_top_k(seed):
    _, items, queries, true, _, counts = _data(seed)
    ks = (1, 5, 10, 50)
    ours = PopularityStratifiedRecall(_dataset(items), counts, ks=ks)
    theirs = tfrs.metrics.FactorizedTopK(_dataset(items), ks=ks)
    for part in (slice(0, 120), slice(120, None)):  # two updates accumulate
        args = (queries[part], items[true[part]])
        ours.update_state(*args, true_candidate_ids=true[part])
        theirs.update_state(*args, true_candidate_ids=tf.constant(true[part]))
    got = _values(ours)
    for k, value in zip(ks, theirs.result()):
        assert got[f"recall@{k}"] == pytest.approx(float(value), abs=1e-7)
    # and the head/tail split equals tfrs_negatives.evaluation.recall_at_k's
    head_tail = PopularityStratifiedRecall(_dataset(items), counts, ks=ks, buckets="head_tail")
    head_tail.update_state(queries, items[true], true_candidate_ids=true)
    want = recall_at_k(queries, items, true, ks=ks, head=popularity_buckets(counts, [0.5] * 2) == 0)
    for name, value in _values(head_tail).items():
        assert value == pytest.approx(want[name], abs=1e-6), name


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "buckets,names",
    [
        ("head_torso_tail", ["head", "torso", "tail"]),
        ("deciles", [f"decile{i}" for i in range(1, 11)]),
        ([0.3, 0.7], ["bucket1", "bucket2"]),
        ({"top": 0.25, "middle": 0.25, "rest": 0.5}, ["top", "middle", "rest"]),
    ],
)
def test_buckets_match_numpy(seed, buckets, names):
    rng, items, queries, true, _, counts = _data(seed)
    weights = rng.uniform(0.1, 2.0, B).astype(np.float32)
    ks = (1, 10, 30)
    metric = PopularityStratifiedRecall(
        _dataset(items), counts, ks=ks, buckets=buckets, chunk_size=16
    )
    assert metric.bucket_names == names
    metric.update_state(queries, items[true], true_candidate_ids=true, sample_weight=weights)
    shares = list(metric.bucket_shares.values())
    item_bucket = _reference_buckets(counts, shares)
    _assert_matches(
        _values(metric), _reference(Rows(queries, true, weights), items, item_bucket, names, ks)
    )
    counts_seen = metric.counts()
    assert counts_seen["all"] == pytest.approx(weights.sum(), rel=1e-5)
    for i, name in enumerate(names):
        assert counts_seen[name] == pytest.approx(weights[item_bucket[true] == i].sum(), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exclude_seen_matches_numpy(seed):
    rng, items, queries, true, _, counts = _data(seed)
    num_users = 25
    users = rng.integers(0, num_users, B)
    train_users = rng.integers(0, num_users, 600)
    train_items = rng.integers(0, N, 600)
    train_users[:5], train_items[:5] = users[:5], true[:5]  # true items seen in training too
    seen_by_user = {u: set() for u in range(num_users)}
    for u, i in zip(train_users, train_items):
        seen_by_user[u].add(i)
    ks = (1, 5, 20)
    metric = PopularityStratifiedRecall(
        _dataset(items), counts, ks=ks, exclude_seen=(train_users, train_items), chunk_size=13
    )
    weights = rng.uniform(0.5, 1.5, B).astype(np.float32)

    @tf.function
    def update(*args, **kwargs):
        metric.update_state(*args, **kwargs)

    update(queries, items[true], true_candidate_ids=true, sample_weight=weights, query_ids=users)
    names = ["head", "torso", "tail"]
    item_bucket = _reference_buckets(counts, [0.5, 0.3, 0.2])
    seen = [seen_by_user[u] for u in users]
    want = _reference(Rows(queries, true, weights, seen), items, item_bucket, names, ks)
    _assert_matches(_values(metric), want)
    # Removing seen items only raises recall; it does change it here.
    plain = _reference(Rows(queries, true, weights), items, item_bucket, names, ks)
    assert all(want[name] >= plain[name] for name in want)
    assert any(want[name] > plain[name] for name in want)

    # bind_query_ids gives the same; string ids (fingerprinted) too.
    metric.reset_state()
    with metric.bind_query_ids(tf.constant(users)):
        metric.update_state(queries, items[true], true_candidate_ids=true, sample_weight=weights)
    _assert_matches(_values(metric), want)
    as_str = np.char.mod("id%d", np.arange(N)).astype(object)
    strings = PopularityStratifiedRecall(
        _dataset(items, ids=as_str),
        dict(zip(as_str, counts)),
        ks=ks,
        exclude_seen=tf.data.Dataset.from_tensor_slices(
            (np.char.mod("u%d", train_users), as_str[train_items].astype(str))
        ).batch(50),
    )
    strings.update_state(
        queries,
        items[true],
        true_candidate_ids=as_str[true].astype(str),
        sample_weight=weights,
        query_ids=np.char.mod("u%d", users),
    )
    _assert_matches(_values(strings), want)


def test_reset_state_and_tf_function():
    _, items, queries, true, _, counts = _data(5)
    metric = PopularityStratifiedRecall(_dataset(items), counts, ks=(5,))

    @tf.function
    def update(q, e, ids):
        metric.update_state(q, e, true_candidate_ids=ids)

    update(queries, items[true], true)
    first = _values(metric)
    assert first["recall@5"] > 0
    metric.reset_state()
    assert all(value == 0 for value in _values(metric).values())
    assert metric.counts()["all"] == 0
    update(queries, items[true], true)
    assert _values(metric) == first
    metric.reset_states()  # the name tfrs.metrics.Factorized uses
    assert metric.counts()["all"] == 0


def test_candidate_forms_agree():
    _, items, queries, true, _, counts = _data(6)
    ks = (1, 10)
    brute_force = tfrs.layers.factorized_top_k.BruteForce(k=10)
    brute_force.index(tf.constant(items), tf.constant(np.arange(N)))
    streaming = tfrs.layers.factorized_top_k.Streaming(k=10).index_from_dataset(_dataset(items))
    forms = {
        "dataset": _dataset(items),
        "unbatched": tf.data.Dataset.from_tensor_slices((np.arange(N), items)),
        "embeddings only": tf.data.Dataset.from_tensor_slices(items).batch(11),
        "brute force": brute_force,
        "streaming": streaming,
        "arrays": (np.arange(N), items),
    }
    results = {}
    for form, candidates in forms.items():
        metric = PopularityStratifiedRecall(candidates, counts, ks=ks)
        assert metric.num_items == N
        metric.update_state(queries, items[true], true_candidate_ids=true)
        results[form] = _values(metric)
    assert all(result == results["dataset"] for result in results.values()), results


def test_true_ids_beyond_the_queries_and_unknown_ids():
    _, items, queries, true, _, counts = _data(7, b=20)
    metric = PopularityStratifiedRecall(_dataset(items), counts, ks=(N,))
    # Tasks pass the ids of every candidate row: the first B are the positives.
    metric.update_state(queries, items[true], true_candidate_ids=np.concatenate([true, [0, 1]]))
    assert _values(metric)["recall@60"] == 1.0
    # An id outside the catalogue is a miss overall and in no bucket.
    metric.reset_state()
    ids = true.copy()
    ids[:5] = 1000
    metric.update_state(queries, items[true], true_candidate_ids=ids)
    assert _values(metric)["recall@60"] == pytest.approx(15 / 20)
    per_bucket = metric.counts()
    assert sum(per_bucket[name] for name in metric.bucket_names) == 15


def test_empty_bucket_reads_zero():
    items = np.eye(4, dtype=np.float32)
    metric = PopularityStratifiedRecall(
        (np.arange(4), items), [97, 1, 1, 1], ks=(1,), buckets="deciles"
    )
    metric.update_state(items, items, true_candidate_ids=np.arange(4))
    values = _values(metric)
    assert values["recall@1"] == 1.0 and values["decile1_recall@1"] == 1.0
    assert values["decile5_recall@1"] == 0.0 and metric.counts()["decile5"] == 0


# Inside a TFRS model.


class _Model(tfrs.Model):
    def __init__(self, metrics, task_class, num_users=20, num_items=N):
        super().__init__()
        self.query_tower = tf.keras.layers.Embedding(num_users, D)
        self.item_tower = tf.keras.layers.Embedding(num_items, D)
        self.bound = None
        self.task = task_class(metrics=metrics(self))

    def compute_loss(self, features, training=False):
        def task():
            return self.task(
                self.query_tower(features["user"]),
                self.item_tower(features["item"]),
                candidate_ids=features["item"],
                compute_metrics=not training,
            )

        if self.bound is None:
            return task()
        with self.bound.bind_query_ids(features["user"]):
            return task()


@pytest.mark.parametrize("task_class", [tfn.CorrectedRetrieval, tfrs.tasks.Retrieval])
def test_inside_model_evaluate(task_class):
    rng = np.random.default_rng(8)
    users, items = rng.integers(0, 20, 300), rng.integers(0, N, 300)
    train_users, train_items = rng.integers(0, 20, 400), rng.integers(0, N, 400)
    counts = np.bincount(train_items, minlength=N)
    ks = (5, 20)

    def metrics(model):
        catalogue = tf.data.Dataset.range(N).batch(16).map(lambda i: (i, model.item_tower(i)))
        model.recall = PopularityStratifiedRecall(catalogue, counts, ks=ks)
        model.unseen = PopularityStratifiedRecall(
            catalogue, counts, ks=ks, exclude_seen=(train_users, train_items), name="unseen"
        )
        model.bound = model.unseen
        return [model.recall, model.unseen, tfrs.metrics.FactorizedTopK(catalogue, ks=ks)]

    model = _Model(metrics, task_class)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.5))
    data = tf.data.Dataset.from_tensor_slices({"user": users, "item": items}).batch(64)
    model.fit(data, epochs=2, verbose=0)
    logs = model.evaluate(data, return_dict=True, verbose=0)

    q = model.query_tower(users).numpy()
    catalogue = model.item_tower(np.arange(N)).numpy()
    names = ["head", "torso", "tail"]
    item_bucket = _reference_buckets(counts, [0.5, 0.3, 0.2])
    want = _reference(Rows(q, items), catalogue, item_bucket, names, ks)
    seen_by_user = {}
    for u, i in zip(train_users, train_items):
        seen_by_user.setdefault(u, set()).add(i)
    seen = [seen_by_user.get(u, set()) for u in users]
    want_unseen = _reference(Rows(q, items, seen=seen), catalogue, item_bucket, names, ks)
    for name, value in want.items():
        assert logs[f"stratified_recall/{name}"] == pytest.approx(value, abs=1e-5), name
        assert logs[f"unseen/{name}"] == pytest.approx(want_unseen[name], abs=1e-5), name
    for k in ks:
        assert logs[f"stratified_recall/recall@{k}"] == pytest.approx(
            logs[f"factorized_top_k/top_{k}_categorical_accuracy"], abs=1e-6
        )
    # evaluate resets the metrics: a second call gives the same figures.
    again = model.evaluate(data, return_dict=True, verbose=0)
    assert again["stratified_recall/head_recall@5"] == pytest.approx(
        logs["stratified_recall/head_recall@5"]
    )


# Bad input.


class _Approximate(tfrs.layers.factorized_top_k.TopK):
    """An index without exact embeddings (as ScaNN)."""

    def index(self, candidates, identifiers=None):
        return self

    def call(self, queries, k=None):
        raise NotImplementedError

    def is_exact(self):
        return False


@pytest.fixture(scope="module")
def bad():
    """The data the error cases are built on: a catalogue of N items, B queries."""
    _, items, queries, true, _, counts = _data(9)
    return dict(items=items, queries=queries, true=true, counts=counts, ds=_dataset(items))


# (case, arguments of PopularityStratifiedRecall from `bad`, error, message).
CONSTRUCTION_ERRORS = [
    ("k beyond catalogue", lambda d: (d["ds"], d["counts"], {"ks": (10, 61)}), ValueError,
     "`ks` must not exceed the catalogue size 60 (`candidates`), got [10, 61]."),
    ("k not positive", lambda d: (d["ds"], d["counts"], {"ks": (0, 5)}), ValueError,
     "`ks` must hold positive ints, got [0, 5]."),
    ("ks repeated", lambda d: (d["ds"], d["counts"], {"ks": (5, 5)}), ValueError,
     "`ks` must be distinct, got [5, 5]."),
    ("shares not summing to 1", lambda d: (d["ds"], d["counts"], {"buckets": [0.5, 0.3]}),
     ValueError, "`buckets` shares must sum to 1, got [0.5, 0.3] (sum 0.8)."),
    ("negative share", lambda d: (d["ds"], d["counts"], {"buckets": [1.2, -0.2]}), ValueError,
     "`buckets` shares must be positive and finite, got [1.2, -0.2]."),
    ("zero share", lambda d: (d["ds"], d["counts"], {"buckets": {"head": 1.0, "tail": 0.0}}),
     ValueError, "`buckets` shares must be positive and finite, got [1.0, 0.0]."),
    ("unknown preset", lambda d: (d["ds"], d["counts"], {"buckets": "quartiles"}), ValueError,
     "`buckets` must be one of ['deciles', 'head_tail', 'head_torso_tail'], a sequence of "
     "shares or a mapping of bucket name to share, got 'quartiles'."),
    ("buckets of another type", lambda d: (d["ds"], d["counts"], {"buckets": 3}), TypeError,
     "`buckets` must be a preset name, a sequence of shares or a mapping of bucket name to "
     "share, got int."),
    ("counts one short", lambda d: (d["ds"], d["counts"][:-1], {}), ValueError,
     "`item_counts` must have one count per catalogue item (60, in the order of "
     "`candidates`), got 59."),
    ("negative counts", lambda d: (d["ds"], -np.ones(N), {}), ValueError,
     "`item_counts` must be non-negative and finite; got [-1.0, -1.0, -1.0, -1.0, -1.0] at "
     "positions [0, 1, 2, 3, 4]."),
    ("zero total", lambda d: (d["ds"], np.zeros(N), {}), ValueError,
     "`item_counts` must have a positive total, got 0."),
    ("no count key in catalogue", lambda d: (d["ds"], {1000: 3}, {}), ValueError,
     "`item_counts` has no key that is a catalogue id (`candidates`): check that both use "
     "the same ids."),
    ("string count keys", lambda d: (d["ds"], {"a": 3}, {}), TypeError,
     "`item_counts` has string keys but the catalogue (`candidates`) has integer ids."),
    ("repeated ids", lambda d: ((np.zeros(N, np.int64), d["items"]), d["counts"], {}),
     ValueError, "`candidates` ids must be distinct; repeated (as int64 or fingerprint): [0]."),
    ("bare array", lambda d: (d["items"], d["counts"], {}), TypeError,
     "`candidates` must be a tf.data.Dataset of (ids, embeddings) batches, a "
     "tfrs.layers.factorized_top_k BruteForce or Streaming index, or a pair "
     "(ids, embeddings); got ndarray."),
    ("approximate index", lambda d: (_Approximate(k=10), d["counts"], {}), TypeError,
     "`candidates` must expose exact embeddings; _Approximate does not"),
    ("no seen pair in catalogue",
     lambda d: (d["ds"], d["counts"], {"exclude_seen": ([1, 2], [1000, 1001])}), ValueError,
     "`exclude_seen` has no pair whose item id is in the catalogue (`candidates`)"),
    ("seen pairs of unequal lengths",
     lambda d: (d["ds"], d["counts"], {"exclude_seen": ([1, 2], [3])}), ValueError,
     "`exclude_seen` must hold as many query ids as item ids, got 2 and 1."),
    ("chunk size not an int", lambda d: (d["ds"], d["counts"], {"chunk_size": 1.5}), TypeError,
     "`chunk_size` must be a positive int, got 1.5."),
]  # fmt: skip


@pytest.mark.parametrize(
    "arguments, error, message",
    [case[1:] for case in CONSTRUCTION_ERRORS],
    ids=[case[0] for case in CONSTRUCTION_ERRORS],
)
def test_bad_construction_raises_a_clear_error(bad, arguments, error, message):
    candidates, item_counts, kwargs = arguments(bad)
    kwargs.setdefault("ks", (5,))
    with pytest.raises(error, match=re.escape(message)):
        PopularityStratifiedRecall(candidates, item_counts, **kwargs)


# (case, keyword arguments of update_state besides the queries, from `bad`, error, message);
# the metric excludes seen pairs, so it needs query ids.
UPDATE_ERRORS = [
    ("no true ids", lambda d: {}, ValueError,
     "`true_candidate_ids` is required: PopularityStratifiedRecall identifies the true item "
     "by id."),
    ("no query ids", lambda d: {"true_candidate_ids": d["true"]}, ValueError,
     "`query_ids` is required with `exclude_seen`"),
    ("string query ids", lambda d: {"true_candidate_ids": d["true"], "query_ids": ["a"] * B},
     TypeError, "`query_ids` holds string ids but `exclude_seen` has integer query ids"),
    ("query ids too few", lambda d: {"true_candidate_ids": d["true"], "query_ids": [1, 2]},
     ValueError, f"`query_ids` must have one entry per query ({B}), got 2."),
    ("string true ids", lambda d: {"true_candidate_ids": d["true"].astype(str)}, TypeError,
     "`true_candidate_ids` holds string ids but the catalogue (`candidates`) has integer ids"),
    ("true ids too few", lambda d: {"true_candidate_ids": d["true"][:3]}, ValueError,
     f"`true_candidate_ids` must have one entry per query ({B}), got 3."),
    ("weights too few",
     lambda d: {"true_candidate_ids": d["true"], "sample_weight": np.ones(3),
                "query_ids": d["true"]},
     ValueError, f"`sample_weight` must have one entry per query ({B}), got 3."),
    ("queries of another dimension",
     lambda d: {"query_embeddings": d["queries"][:, :3], "true_candidate_ids": d["true"]},
     ValueError, f"`query_embeddings` must have the catalogue's embedding dimension {D}, got "
     f"shape ({B}, 3)."),
]  # fmt: skip


@pytest.mark.parametrize(
    "arguments, error, message",
    [case[1:] for case in UPDATE_ERRORS],
    ids=[case[0] for case in UPDATE_ERRORS],
)
def test_bad_update_raises_a_clear_error(bad, arguments, error, message):
    metric = PopularityStratifiedRecall(
        bad["ds"], bad["counts"], ks=(5,), exclude_seen=([1, 2], [3, 4])
    )
    kwargs = {"query_embeddings": bad["queries"], **arguments(bad)}
    with pytest.raises(error, match=re.escape(message)):
        metric.update_state(true_candidate_embeddings=bad["items"][bad["true"]], **kwargs)


def test_catalogue_that_changes_between_passes_is_an_error():
    _, items, queries, true, _, counts = _data(10)
    ids = tf.Variable(np.arange(N))
    ds = tf.data.Dataset.range(N).batch(7).map(lambda i: (tf.gather(ids, i), tf.gather(items, i)))
    metric = PopularityStratifiedRecall(ds, counts, ks=(5,))
    metric.update_state(queries, items[true], true_candidate_ids=true)
    ids.assign(np.arange(N)[::-1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="do not shuffle"):
        metric.update_state(queries, items[true], true_candidate_ids=true)


def test_float16_embeddings_are_scored_in_float32():
    _, items, queries, true, _, counts = _data(11)
    items16, queries16 = items.astype(np.float16), queries.astype(np.float16)
    metric = PopularityStratifiedRecall((np.arange(N), items16), counts, ks=(1, 10))
    metric.update_state(queries16, items16[true], true_candidate_ids=true)
    item_bucket = _reference_buckets(counts, [0.5, 0.3, 0.2])
    rows = Rows(queries16.astype(np.float32), true)
    want = _reference(
        rows, items16.astype(np.float32), item_bucket, ["head", "torso", "tail"], (1, 10)
    )
    _assert_matches(_values(metric), want)
