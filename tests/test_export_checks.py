"""Exports that must not go silently wrong: a mixed-precision policy, an `exclude` input
with the wrong number of rows, and an export whose weights are missing or cut short.

Towers: seeded `StringLookup` + `Embedding` over 20 users and 300 string-id items of
dimension 8 (under `mixed_float16` they output float16). Everything runs in this process.
"""

import os
import shutil

from tfrs_negatives.export import (
    IncompleteExportError,
    load_retrieval,
    missing_weights,
    save_retrieval,
)
from tfrs_negatives.export.query import main as query_main

import numpy as np
import pytest
import tensorflow as tf
from tests_support import seeded_string_towers

DIM, K = 8, 10
USERS = np.array([f"user{i}" for i in range(20)])
ITEMS = np.array([f"item{i}" for i in range(300)])
SHARD = os.path.join("variables", "variables.data-00000-of-00001")


def _towers():
    """Built towers with seeded weights, under whatever global policy is set."""
    return seeded_string_towers(USERS, ITEMS, DIM)


@pytest.fixture
def mixed_float16():
    """The global Keras policy `mixed_float16` during the test, float32 again after."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("index", ["exact", "scann"])
def test_export_under_mixed_float16_serves_float32_scores(mixed_float16, tmp_path, index):
    query, item = _towers()
    assert query(tf.constant(USERS[:1])).dtype == tf.float16  # the policy is in force
    save_retrieval(query, ITEMS, tmp_path / "m", index=index, k=K, candidate_tower=item)
    assert tf.keras.mixed_precision.global_policy().name == "mixed_float16"  # restored
    served = load_retrieval(tmp_path / "m").signatures["serving_default"](query=tf.constant(USERS))
    # Reference: the float16 embeddings the towers give, scored in float64.
    q = query(tf.constant(USERS)).numpy().astype(np.float64)
    c = item(tf.constant(ITEMS)).numpy().astype(np.float64)
    scores = q @ c.T
    assert served["scores"].dtype == tf.float32
    ids = served["ids"].numpy().astype(str)
    best = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    overlap = np.mean([len(set(ids[u]) & set(ITEMS[best[u]])) / K for u in range(len(USERS))])
    assert overlap >= (1.0 if index == "exact" else 0.95)
    # Every returned score is the exact dot product of its (query, item) pair.
    rows = np.searchsorted(ITEMS[np.argsort(ITEMS)], ids)
    positions = np.argsort(ITEMS)[rows]
    want = np.take_along_axis(scores, positions, axis=1)
    np.testing.assert_allclose(served["scores"].numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def exclude_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("exclude_rows")
    query, item = _towers()
    path = save_retrieval(query, ITEMS, str(root / "m"), k=K, candidate_tower=item, exclude=True)
    loaded = load_retrieval(path)
    object.__setattr__(loaded, "path", path)
    return loaded


def test_exclude_with_fewer_rows_than_queries_names_both_counts(exclude_export):
    serve = exclude_export.signatures["serving_default"]
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"`exclude` must have one row of ids per query: expected 3 rows .*got 2 rows",
    ):
        serve(query=tf.constant(USERS[:3]), exclude=tf.constant([["item1"], ["item2"]]))


def test_exclude_with_more_rows_than_queries_through_serve(exclude_export):
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"`exclude`.*expected 1 rows .*got 4 rows"
    ):
        exclude_export.serve({"query": tf.constant(USERS[:1]), "exclude": tf.fill([4, 2], "x")})


def test_query_command_with_exclude_lists_for_another_number_of_queries(exclude_export, capsys):
    args = ["--queries", "user1,user2", "--exclude", "item1", "--exclude", "item2"]
    with pytest.raises(SystemExit) as exit_info:
        query_main([exclude_export.path, *args, "--exclude", "item3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(
        "--exclude must be given once (for every query) or once per query (2), got 3."
    )
    assert query_main([exclude_export.path, *args]) == 0  # one list per query


def test_exclude_with_one_row_per_query_still_serves(exclude_export):
    serve = exclude_export.signatures["serving_default"]
    plain = serve(query=tf.constant(USERS[:2]), exclude=tf.zeros([2, 0], tf.string))
    first = plain["ids"].numpy()[:, :1]  # leave out each query's best item
    got = serve(query=tf.constant(USERS[:2]), exclude=tf.constant(first))
    np.testing.assert_array_equal(got["ids"].numpy()[:, : K - 1], plain["ids"].numpy()[:, 1:])


# ---- incomplete exports ----


@pytest.fixture(scope="module")
def complete_export(tmp_path_factory):
    """A complete exact export; each test damages its own copy."""
    root = tmp_path_factory.mktemp("complete")
    query, item = _towers()
    return save_retrieval(query, ITEMS, str(root / "m"), k=K, candidate_tower=item)


@pytest.fixture
def copy(complete_export, tmp_path):
    path = str(tmp_path / "copy")
    shutil.copytree(complete_export, path)
    return path


def _truncate(path, size):
    with open(os.path.join(path, SHARD), "r+b") as f:
        f.truncate(size)


def test_complete_export_has_nothing_missing(complete_export):
    assert missing_weights(complete_export) is None
    assert load_retrieval(complete_export).metadata["k"] == K


def test_missing_variables_directory(copy):
    shutil.rmtree(os.path.join(copy, "variables"))
    with pytest.raises(IncompleteExportError) as err:
        load_retrieval(copy)
    assert str(err.value).startswith(
        f"The export at {copy!r} is incomplete: its variables/ directory (the weights) is missing."
    )
    assert "different device" not in str(err.value)


def test_missing_variables_index(copy):
    os.remove(os.path.join(copy, "variables", "variables.index"))
    with pytest.raises(IncompleteExportError, match=r"incomplete: variables/variables.index is"):
        load_retrieval(copy)


def test_missing_data_shard(copy):
    os.remove(os.path.join(copy, SHARD))
    with pytest.raises(IncompleteExportError, match=r"variables/ holds no data shard"):
        load_retrieval(copy)


def test_empty_data_shard(copy):
    _truncate(copy, 0)
    with pytest.raises(
        IncompleteExportError,
        match=r"incomplete: variables/variables.data-00000-of-00001 is empty \(0 bytes\)",
    ):
        load_retrieval(copy)


def test_truncated_data_shard_reported_from_the_tensorflow_error(copy):
    full = os.path.getsize(os.path.join(copy, SHARD))
    _truncate(copy, full // 2)
    assert missing_weights(copy) is None  # present and not empty: only reading tells
    with pytest.raises(IncompleteExportError) as err:
        load_retrieval(copy)
    message = str(err.value)
    assert message.startswith(f"The export at {copy!r} is incomplete: TensorFlow could not")
    assert f"variables.data-00000-of-00001 {full // 2} bytes" in message
    assert "different device" not in message


def test_shard_of_a_two_shard_checkpoint_missing(copy):
    os.rename(
        os.path.join(copy, SHARD),
        os.path.join(copy, "variables", "variables.data-00001-of-00002"),
    )
    assert missing_weights(copy) == (
        "variables/ lacks variables.data-00000-of-00002 of its 2 data shard(s)"
    )


def test_query_command_on_an_incomplete_export_exits_2(copy, capsys):
    shutil.rmtree(os.path.join(copy, "variables"))
    with pytest.raises(SystemExit) as exit_info:
        query_main([copy, "--queries", "user1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"The export at {copy!r} is incomplete" in err and "Traceback" not in err
