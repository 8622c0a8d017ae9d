"""The MovieLens ranking-subsampling example end to end on tfds mock data (no download)."""

import json
import pathlib

import pytest
import tensorflow as tf
from tests_support import load_script

EXAMPLE = (
    pathlib.Path(__file__).resolve().parents[1] / "examples" / "movielens_ranking_subsampling.py"
)


def test_runs_and_the_correction_lowers_the_subsampled_predictions(
    mock_ratings, serve_from_tfds, tmp_path
):
    example = load_script(EXAMPLE, "movielens_ranking_subsampling")
    out = tmp_path / "results.json"
    argv = ["--epochs", "2", "--batch_size", "64", "--rate", "0.5", "--output_json", str(out)]
    # tfds' mock ratings are random floats below 1: give them MovieLens' 1-5 stars.
    stars = tf.data.Dataset.range(10**6).map(lambda i: tf.cast(i * 7 % 5 + 1, tf.float32))
    ratings = tf.data.Dataset.zip((mock_ratings, stars)).map(
        lambda x, star: {**x, "user_rating": star}
    )
    with serve_from_tfds(ratings):
        results = example.run(argv)
    saved = json.loads(out.read_text())
    assert saved["source"] == "tfds:movielens/100k-ratings" and saved["rate"] == 0.5
    assert set(saved["results"]) == set(example.RUNS)
    rates = {row["click_rate"] for row in saved["results"].values()}
    assert len(rates) == 1 and 0 < rates.pop() < 1  # one test log for every run
    subsampled, corrected = results["subsampled"], results["prior_corrected"]
    # p / (p + (1 - p) / rate) < p for rate < 1: the correction lowers every prediction.
    assert corrected["mean_predicted"] < subsampled["mean_predicted"]
    for name, row in results.items():
        assert saved["results"][name] == pytest.approx(row)
        assert row["log_loss"] > 0 and 0 <= row["ece"] <= 1
