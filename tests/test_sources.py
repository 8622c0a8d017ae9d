"""Negative sources and the catalogue: draws, probabilities, config, errors."""

import warnings

import tfrs_negatives as tfn
from tfrs_negatives.negatives import Catalogue, FullCatalogue, InBatch, Popularity, Uniform

import numpy as np
import pytest
import tensorflow as tf
from tests_support import NUM_ITEMS, TwoTower, interactions


def _ids(values):
    return tfn.ops.to_int64_ids(tf.constant(values))


def test_catalogue_lookup_and_constructors():
    cat = Catalogue(tf.constant(["c", "a", "b"]))
    index, found = cat.lookup(_ids(["b", "zz", "c"]))
    np.testing.assert_array_equal(index.numpy()[[0, 2]], [2, 0])
    np.testing.assert_array_equal(found.numpy(), [True, False, True])
    lookup = tf.keras.layers.StringLookup(vocabulary=["x", "y"])
    assert Catalogue.from_lookup(lookup).raw_ids.numpy().tolist() == [b"x", b"y"]
    ds = tf.data.Dataset.from_tensor_slices({"title": ["t1", "t2"], "year": [1990, 1991]})
    cat = Catalogue.from_dataset(ds, id_key="title")
    _, features = cat.gather(tf.constant([1]))
    assert features["year"].numpy().tolist() == [1991]
    assert Catalogue(**cat.get_config()).get_config() == cat.get_config()


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Catalogue(tf.constant([], tf.int64)), ValueError, "non-empty"),
        (lambda: Catalogue([1, 2, 1]), ValueError, "distinct"),
        (lambda: Catalogue([1, 2], features={"f": [1, 2, 3]}), ValueError, "`features`.*2 rows"),
        (
            lambda: Catalogue.from_dataset(tf.data.Dataset.from_tensor_slices({"a": [1]})),
            ValueError,
            "`id_key`",
        ),
        (lambda: Catalogue.from_dataset(tf.data.Dataset.range(3).take(0)), ValueError, "empty"),
        (lambda: Uniform([], 4), ValueError, "`catalogue` is empty"),
        (lambda: Uniform([1, 2, 3], 4, replace=False), ValueError, r"`count` \(4\).*\(3\)"),
        (lambda: Uniform([1, 2, 3], -1), ValueError, "`count`"),
        (lambda: Popularity([1, 2], 3, power=-0.5, counts=[1, 2]), ValueError, "`power`"),
        (lambda: Popularity([1, 2], 3, counts=[0, 2]), ValueError, "probability zero"),
        (lambda: Popularity([1, 2], 3, counts=[1, float("nan")]), ValueError, "`counts`"),
        (lambda: Popularity([1, 2], 3, counts=[1, 2, 3]), ValueError, "one value per"),
        (lambda: Popularity([1, 2], 3), ValueError, "exactly one of"),
        (lambda: Uniform([1, 2], 1, weight=-1.0), ValueError, "`weight`"),
        (
            lambda: Popularity([1, 2], 3, counts=[1, 2], refresh_every_n_steps=0),
            ValueError,
            "`refresh_every_n_steps` must be an integer >= 1, got 0",
        ),
    ],
)
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_uniform_with_replacement_is_uniform():
    source = Uniform(np.arange(10), count=5000, seed=0)
    ids, features = source.sample()
    counts = np.bincount(ids.numpy(), minlength=10)
    # Chi-square with 9 dof: 99.9% quantile 27.9.
    chi2 = ((counts - 500) ** 2 / 500).sum()
    assert chi2 < 27.9
    np.testing.assert_array_equal(ids.numpy(), features.numpy())
    np.testing.assert_allclose(source.draw_probability(_ids([3, 99])).numpy(), [0.1, 0.0])


def test_uniform_without_replacement_draws_distinct_uniformly():
    source = Uniform(np.arange(20), count=5, replace=False, seed=1)
    hits = np.zeros(20)
    for _ in range(400):
        ids = source.sample()[0].numpy()
        assert len(set(ids)) == 5 and ids.min() >= 0 and ids.max() < 20
        hits[ids] += 1
    # Each item is included with probability 5/20: 100 expected, sd ~8.7.
    assert np.abs(hits - 100).max() < 5 * 8.7
    # Inclusion probability: 1 - exp(log miss) = count / N.
    miss = source.log_miss_probability(_ids([0, 50]), 5).numpy()
    np.testing.assert_allclose(1 - np.exp(miss), [0.25, 0.0], rtol=1e-6)


def test_popularity_pmf_and_draws():
    counts = np.array([8.0, 4.0, 2.0, 1.0])
    source = Popularity(["a", "b", "c", "d"], count=20000, power=0.5, counts=counts, seed=0)
    pmf = counts**0.5 / (counts**0.5).sum()
    np.testing.assert_allclose(
        source.draw_probability(_ids(["a", "b", "c", "d"])).numpy(), pmf, rtol=1e-6
    )
    ids, titles = source.sample()
    freq = np.array([(titles.numpy() == t).mean() for t in [b"a", b"b", b"c", b"d"]])
    np.testing.assert_allclose(freq, pmf, atol=0.015)
    uniform = Popularity([1, 2, 3], 2, power=0.0, counts=[5, 1, 1])
    np.testing.assert_allclose(uniform.pmf().numpy(), [1 / 3] * 3, rtol=1e-6)


def test_popularity_from_estimator_and_refresh():
    est = tfn.ExactFrequencyEstimator([1, 2], [3, 1])
    source = Popularity([1, 2], 4, power=1.0, estimator=est)
    np.testing.assert_allclose(source.pmf().numpy(), [0.75, 0.25], rtol=1e-6)


def test_full_catalogue_is_deterministic_and_certain():
    source = FullCatalogue([4, 5, 6])
    ids, _ = source.sample()
    np.testing.assert_array_equal(ids.numpy(), [4, 5, 6])
    miss = source.log_miss_probability(_ids([5, 7]), source.count).numpy()
    assert miss[0] == -np.inf and miss[1] == 0.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Uniform(["a", "b", "c"], 2, replace=False, weight=0.5, seed=3),
        lambda: Popularity([1, 2, 3], 5, power=0.75, counts=[3, 2, 1], seed=1),
        lambda: FullCatalogue([1, 2]),
        lambda: InBatch(weight=0.5),
    ],
)
def test_sources_get_config_round_trip(make):
    source = make()
    config = source.get_config()
    clone = type(source).from_config(config)
    assert clone.get_config() == config
    again = tf.keras.layers.deserialize(tf.keras.layers.serialize(source))
    assert type(again) is type(source)


def test_seeded_sources_repeat_and_generator_state_is_checkpointed(tmp_path):
    a, b = Uniform(np.arange(100), 8, seed=5), Uniform(np.arange(100), 8, seed=5)
    np.testing.assert_array_equal(a.sample()[0].numpy(), b.sample()[0].numpy())
    path = tf.train.Checkpoint(source=a).save(str(tmp_path / "c"))
    expected = a.sample()[0].numpy()
    fresh = Uniform(np.arange(100), 8, seed=99)
    tf.train.Checkpoint(source=fresh).restore(path)
    np.testing.assert_array_equal(fresh.sample()[0].numpy(), expected)


@pytest.mark.parametrize("ids, kind", [([3, 1, 2], "int"), (["c", "a", "b"], "string")])
def test_catalogue_remembers_its_id_kind_through_config(ids, kind):
    catalogue = Catalogue(ids)
    assert catalogue.id_kind == kind
    assert Catalogue(**catalogue.get_config()).id_kind == kind
    source = Uniform(ids, 2)
    assert type(source).from_config(source.get_config()).catalogue.id_kind == kind


def test_catalogue_of_int_ids_rejects_string_ids():
    catalogue = Catalogue(np.arange(5, dtype=np.int64))
    catalogue.check_ids(tf.constant([1, 2], tf.int32), "candidate_ids")  # any int dtype
    with pytest.raises(
        TypeError,
        match=r"^`candidate_ids` are strings but the Catalogue was built on int ids "
        r"\(int32/int64\)",
    ):
        catalogue.check_ids(tf.constant(["1", "2"]), "candidate_ids")


def test_catalogue_of_string_ids_rejects_int_ids():
    catalogue = Catalogue(["a", "b"])
    with pytest.raises(
        TypeError, match=r"^`ids` are ints but the Catalogue was built on string ids.*Pass string"
    ):
        catalogue.check_ids(np.array([0, 1]))


def test_source_check_names_the_source_and_argument():
    source = Uniform(np.arange(5), 2, name="easy")
    with pytest.raises(
        TypeError,
        match=r"`candidate_ids` are strings but the Catalogue of Uniform `easy` was built on int",
    ):
        source.check_ids(tf.constant(["a"]))
    InBatch().check_ids(tf.constant(["a"]))  # no ids of its own: any kind


def test_task_rejects_candidate_ids_of_the_other_kind_at_trace_time():
    items = np.arange(6)
    task = tfn.CorrectedRetrieval(negatives=[Uniform(items, 3, name="uniform_ints")])
    tower = tf.keras.layers.Embedding(6, 4)
    call = tf.function(
        lambda ids: task(tf.ones([2, 4]), tf.ones([2, 4]), candidate_ids=ids, candidate_tower=tower)
    )
    assert np.isfinite(call(tf.constant([0, 1])).numpy())
    with pytest.raises(TypeError, match="`candidate_ids` are strings but the Catalogue of Uniform"):
        call(tf.constant(["0", "1"]))


def test_catalogue_fingerprint_is_order_sensitive():
    a, b = Catalogue([1, 2, 3]), Catalogue(np.array([1, 2, 3], np.int32))
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    assert Catalogue([3, 2, 1]).fingerprint != a.fingerprint
    assert Catalogue([1, 2]).fingerprint != a.fingerprint


def _popularity_pmf(estimator, ids, power):
    q = estimator.probability(tfn.ops.to_int64_ids(tf.constant(ids))).numpy().astype(np.float64)
    return q**power / (q**power).sum()


@pytest.mark.parametrize("wrap", [lambda f: f, tf.function])
def test_popularity_tracks_a_learning_estimator(wrap):
    items = np.arange(6)
    est = tfn.StreamingFrequencyEstimator(num_buckets=1009, num_hashes=1, learning_rate=0.5)
    source = Popularity(items, 4, power=0.5, estimator=est, refresh_every_n_steps=2)
    np.testing.assert_allclose(source.pmf().numpy(), np.full(6, 1 / 6), rtol=1e-6)  # knows nothing
    sample = wrap(source.sample)
    est(tf.constant([0, 0, 0, 1, 2, 2]), training=True)
    sample()  # draw 0: re-reads the estimator
    learned = _popularity_pmf(est, items, 0.5)
    assert learned.max() / learned.min() > 1.5  # not uniform any more: sqrt(3) here
    np.testing.assert_allclose(source.pmf().numpy(), learned, rtol=1e-5)
    np.testing.assert_allclose(source.cdf.numpy(), np.cumsum(learned), rtol=1e-5)
    est(tf.constant([5, 5, 5, 5, 4, 3]), training=True)
    sample()  # draw 1: keeps the last read
    np.testing.assert_allclose(source.pmf().numpy(), learned, rtol=1e-5)
    sample()  # draw 2: re-reads
    np.testing.assert_allclose(source.pmf().numpy(), _popularity_pmf(est, items, 0.5), rtol=1e-5)
    # What the task corrects with is what the draws follow.
    ids = tfn.ops.to_int64_ids(tf.constant([5, 0]))
    np.testing.assert_allclose(
        source.draw_probability(ids).numpy(), source.pmf().numpy()[[5, 0]], rtol=1e-6
    )


def test_popularity_of_a_fixed_estimator_is_read_once():
    est = tfn.ExactFrequencyEstimator([1, 2], [3, 1])
    source = Popularity([1, 2], 4, power=1.0, estimator=est)
    assert not source.tracks_estimator
    source.sample()
    np.testing.assert_allclose(source.pmf().numpy(), [0.75, 0.25], rtol=1e-6)


def test_popularity_restored_from_other_counts_warns_and_keeps_its_counts(tmp_path):
    old = Popularity([1, 2, 3], 4, power=1.0, counts=[1, 1, 2])
    path = tf.train.Checkpoint(source=old).save(str(tmp_path / "c"))
    new = Popularity([1, 2, 3], 4, power=1.0, counts=[5, 3, 2], name="new")
    with pytest.warns(RuntimeWarning, match=r"Popularity `new`.*other `counts` or `power`"):
        tf.train.Checkpoint(source=new).restore(path)
    np.testing.assert_allclose(new.pmf().numpy(), [0.5, 0.3, 0.2], rtol=1e-6)
    np.testing.assert_allclose(new.cdf.numpy(), [0.5, 0.8, 1.0], rtol=1e-6)


def test_popularity_restored_from_its_own_counts_is_silent(tmp_path):
    old = Popularity([1, 2, 3], 4, power=1.0, counts=[1, 1, 2], seed=1)
    path = tf.train.Checkpoint(source=old).save(str(tmp_path / "c"))
    new = Popularity([1, 2, 3], 4, power=1.0, counts=[1, 1, 2], seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tf.train.Checkpoint(source=new).restore(path).assert_consumed()
    np.testing.assert_array_equal(new.sample()[0].numpy(), old.sample()[0].numpy())


def test_popularity_follows_the_task_estimator_during_fit():
    items = np.arange(NUM_ITEMS)
    est = tfn.StreamingFrequencyEstimator(num_buckets=256)
    source = Popularity(items, 8, power=1.0, estimator=est, refresh_every_n_steps=1)
    model = TwoTower(tfn.CorrectedRetrieval(frequency=est, negatives=[InBatch(), source]))
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    model.fit(interactions(), epochs=1, verbose=0)  # 4 steps, each re-reads, then counts
    assert int(source.draws.numpy()) == 4
    pmf = source.pmf().numpy()
    assert pmf.argmax() == 0 and pmf[0] > 5 / NUM_ITEMS  # Zipf: item 0 the most popular
    source.sample()
    np.testing.assert_allclose(source.pmf().numpy(), _popularity_pmf(est, items, 1.0), rtol=1e-5)
