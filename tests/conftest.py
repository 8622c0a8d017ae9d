"""Test setup: Keras 2 before TensorFlow loads, quiet TF logs; the shared mock MovieLens ratings."""

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfrs_negatives  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS=1 before TF loads)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

#: Logical CPU devices of the test process, for the `tf.distribute` tests (set before
#: TensorFlow initializes its devices; tests on one device use `/cpu:0` as before).
NUM_LOGICAL_CPUS = 4
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS,
)


@pytest.fixture(autouse=True)
def _own_collective_keys():
    """Every test's `MirroredStrategy`s take collective keys of their own: keys restart at
    the class's base in every strategy, and one process may not join a key with two
    group sizes (TF's own tests move the same class attribute)."""
    tf.distribute.MirroredStrategy._collective_key_base += 10_000


def _mock_ratings_with_repeats(num_examples=400, num_users=25, num_titles=60, seed=0):
    """tfds' mock examples (real schema), with ids drawn from small pools so that
    users and titles repeat (Zipf titles) as in real data; the ragged genres are dropped."""
    with tfds.testing.mock_data(num_examples=num_examples):
        rows = list(tfds.load("movielens/100k-ratings", split="train").as_numpy_iterator())
    rng = np.random.default_rng(seed)
    columns = {k: np.array([r[k] for r in rows]) for k in rows[0] if k != "movie_genres"}
    columns["user_id"] = np.array([b"u%d" % i for i in rng.integers(0, num_users, len(rows))])
    titles = np.minimum(rng.zipf(1.3, len(rows)), num_titles) - 1
    columns["movie_title"] = np.array([b"title %d" % i for i in titles])
    return tf.data.Dataset.from_tensor_slices(columns)


@pytest.fixture(scope="session")
def make_mock_ratings():
    """`make_mock_ratings(num_examples=400, num_users=25, num_titles=60, seed=0)`: mock
    MovieLens ratings (tfds' schema, no genres) whose users and titles repeat."""
    return _mock_ratings_with_repeats


@pytest.fixture(scope="session")
def mock_ratings():
    """400 mock ratings of 25 users and up to 60 titles (`make_mock_ratings()`)."""
    return _mock_ratings_with_repeats()


@pytest.fixture(scope="session")
def mock_num_titles(mock_ratings):
    """The number of distinct titles in `mock_ratings`."""
    return len({x["movie_title"] for x in mock_ratings.as_numpy_iterator()})


@pytest.fixture(scope="session")
def serve_from_tfds():
    """`with serve_from_tfds(dataset):` makes `tfds.load` of any dataset return `dataset`."""

    @contextlib.contextmanager
    def serve(dataset):
        with tfds.testing.mock_data(as_dataset_fn=lambda *args, **kwargs: dataset):
            yield

    return serve


@pytest.fixture
def run_on(example, serve_from_tfds):
    """`run_on(dataset, flags)`: the test module's `example` run on `dataset` served as tfds,
    without the export (`--export_dir=`; a later `--export_dir` in `flags` wins)."""

    def run(dataset, flags):
        with serve_from_tfds(dataset):
            return example.run(["--export_dir=", *flags])

    return run
