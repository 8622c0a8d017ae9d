"""The MovieLens log-Q example end to end on tfds mock data (no download)."""

import json
import pathlib

from tfrs_negatives.experiments.serving import best_run, parse_table
from tfrs_negatives.export import load_retrieval

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tests_support import load_script

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "movielens_logq.py"


def _load_example():
    return load_script(EXAMPLE, "movielens_logq")


@pytest.fixture(scope="module")
def example():
    return _load_example()


def test_runs_end_to_end_on_mock_tfds(example, mock_ratings, serve_from_tfds, tmp_path):
    out = tmp_path / "results.json"
    with serve_from_tfds(mock_ratings):
        results = example.run(
            [
                "--epochs",
                "2",
                "--batch_size",
                "64",
                "--ks",
                "1,10,20",
                "--output_json",
                str(out),
                "--export_dir=",
            ]
        )
    saved = json.loads(out.read_text())
    assert saved["source"] == "tfds:movielens/100k-ratings"
    assert set(saved["results"]) == set(example.STRATEGIES)
    for row in saved["results"].values():
        assert row["n"] == 80  # 20% of 400
        assert 0.0 <= row["recall@1"] <= row["recall@10"] <= row["recall@20"] <= 1.0
        # Overall recall is the head/tail mix weighted by their test counts.
        n_head = row["n_head"]
        assert 0 < n_head < 80
        mixed = (n_head * row["head_recall@10"] + (80 - n_head) * row["tail_recall@10"]) / 80
        assert row["recall@10"] == pytest.approx(mixed, abs=1e-9)
    for name, row in results.items():
        assert saved["results"][name] == pytest.approx(row)


def test_recall_at_catalogue_size_is_one(example):
    with tfds.testing.mock_data(num_examples=60):
        dataset = tfds.load("movielens/100k-ratings", split="train")
        titles = {x["movie_title"] for x in dataset.as_numpy_iterator()}
        results = example.run(
            [
                "--epochs",
                "1",
                "--batch_size",
                "16",
                "--strategies",
                "logq_streaming",
                "--ks",
                f"1,{len(titles)}",
                "--export_dir=",
            ]
        )
    assert results["logq_streaming"][f"recall@{len(titles)}"] == 1.0


def test_ends_by_exporting_the_best_run_and_querying_it_in_a_new_process(
    example, mock_ratings, serve_from_tfds, tmp_path, capsys
):
    export = tmp_path / "export"
    titles = {x["movie_title"].decode() for x in mock_ratings.as_numpy_iterator()}
    with serve_from_tfds(mock_ratings):
        results = example.run(
            [
                "--epochs",
                "1",
                "--batch_size",
                "64",
                "--ks",
                "1,10",
                "--strategies",
                "plain,logq_exact",
                "--export_dir",
                str(export),
            ]
        )
    printed = capsys.readouterr().out
    assert f"exported run {best_run(results)!r} (exact index) to {export}" in printed
    top = parse_table(printed.split("(python -m tfrs_negatives.export.query):")[1])
    assert len(top) == 3  # three users, ten titles each, all from the catalogue
    assert all(len(ids) == 10 and set(ids) <= titles for ids in top.values())
    # The export loads here too, and the new process printed this model's answers.
    model = load_retrieval(str(export))
    assert model.metadata["index"] == "exact" and model.metadata["k"] == 10
    got = model.signatures["serving_default"](query=tf.constant(list(top)))["ids"].numpy()
    assert [[i.decode() for i in row] for row in got] == list(top.values())


def test_bad_flags_exit_with_message(example, capsys):
    with pytest.raises(SystemExit):
        example.run(["--strategies", "plain,magic"])
    assert "unknown ['magic']" in capsys.readouterr().err


def test_under_mirrored_strategy_trains_as_one_device(example, mock_ratings, serve_from_tfds):
    """4 replicas, global negatives: the corrected runs equal one device; TFRS's own
    `plain` task keeps per-replica negatives, so it is not compared."""
    tf.distribute.MirroredStrategy._collective_key_base += 10_000
    flags = ["--epochs", "2", "--batch_size", "64", "--ks", "1,10,20", "--export_dir="]
    flags += ["--strategies", "logq_streaming,logq_exact"]
    with serve_from_tfds(mock_ratings):
        one = example.run(flags)
        four = example.run(flags + ["--distribution", "mirrored"])
    for name, row in one.items():
        for key in ("recall@1", "recall@10", "head_recall@10", "tail_recall@10"):
            assert four[name][key] == pytest.approx(row[key], abs=1e-9), (name, key)
