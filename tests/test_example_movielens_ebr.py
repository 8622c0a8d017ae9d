"""The EBR loop example (train, export, embed, mine, retrain) end to end on tfds mock data."""

import math
import pathlib

from tfrs_negatives.mining import read_mined_windows

import numpy as np
import pytest
import tensorflow as tf
from tests_support import load_script

pytest.importorskip("apache_beam")

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "movielens_ebr_beam.py"


@pytest.fixture(scope="module")
def example():
    return load_script(EXAMPLE, "movielens_ebr_beam")


def _flags(work, ks, *extra):
    return [
        "--batch_size", "64", "--epochs", "2", "--window", "2,8", "--hard_count", "2",
        "--num_shards", "2", "--ks", ",".join(map(str, ks)), "--work_dir", str(work), *extra,
    ]  # fmt: skip


def test_query_side_loop_mines_what_the_towers_rank_and_retrains(
    example, serve_from_tfds, mock_ratings, mock_num_titles, tmp_path
):
    ks = [1, 5, mock_num_titles]
    with serve_from_tfds(mock_ratings):
        results = example.run(_flags(tmp_path, ks, "--rounds", "2"))
    assert list(results) == [
        "round 0 (in-batch + log-Q)", "round 1 (+2 mined)", "round 2 (+2 mined)"
    ]  # fmt: skip
    for row in results.values():
        assert math.isclose(row[f"recall@{mock_num_titles}"], 1.0)  # every title ranked
        assert 0.0 <= row["recall@1"] <= row["recall@5"] <= 1.0
        assert math.isfinite(row["final_loss"])
    assert results["round 1 (+2 mined)"]["fallbacks"] == 0  # every user was mined
    ratings = list(mock_ratings.as_numpy_iterator())
    users = {r["user_id"] for r in ratings}
    anchors, windows = read_mined_windows(str(tmp_path / "round1" / "mined-*-of-*"))
    assert set(anchors.tolist()) == users
    titles = sorted({r["movie_title"] for r in ratings})
    assert all(len(w) == 6 and set(w.tolist()) <= set(titles) for w in windows)
    # The windows are ranks [2, 8) of the exported round-0 towers, the user's titles dropped.
    towers = {
        side: tf.saved_model.load(str(tmp_path / "round1" / f"{side}_tower"))
        for side in ("item", "query")
    }
    items = towers["item"].signatures["serving_default"](movie_title=tf.constant(titles))
    queries = towers["query"].signatures["serving_default"](user_id=tf.constant(anchors))
    scores = queries["embedding"].numpy().astype(np.float64) @ items["embedding"].numpy().T
    exclude = {}
    for record in tf.data.TFRecordDataset(str(tmp_path / "round1" / "anchors_in.tfrecord")):
        feature = tf.train.Example.FromString(record.numpy()).features.feature
        exclude[feature["id"].bytes_list.value[0]] = set(feature["exclude"].bytes_list.value)
    assert 0 < sum(map(len, exclude.values())) < len(ratings)  # the users' training titles
    for user, row, window in zip(anchors, scores, windows):
        ranked = [titles[i] for i in np.lexsort((np.array(titles, object), -row))]
        admissible = [t for t in ranked if t not in exclude[user]]
        assert window.tolist() == admissible[2:8]


def test_item_side_loop_with_scann_shards(
    example, serve_from_tfds, mock_ratings, mock_num_titles, tmp_path
):
    ks = [1, 5, mock_num_titles]
    with serve_from_tfds(mock_ratings):
        results = example.run(_flags(tmp_path, ks, "--side", "item", "--index", "scann"))
    assert results["round 1 (+2 mined)"]["fallbacks"] == 0
    anchors, windows = read_mined_windows(str(tmp_path / "round1" / "mined-*-of-*"))
    assert len(anchors) == mock_num_titles
    assert all(a not in w.tolist() for a, w in zip(anchors, windows))  # never its own negative
    assert np.isfinite(results["round 1 (+2 mined)"]["recall@5"])


def test_a_window_beyond_the_catalogue_is_a_usage_error(
    example, serve_from_tfds, mock_ratings, tmp_path
):
    with serve_from_tfds(mock_ratings), pytest.raises(SystemExit):
        example.run(["--window", "10,100000", "--work_dir", str(tmp_path)])
