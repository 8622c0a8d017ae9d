"""The MovieLens mixed-negatives example end to end on tfds mock data (no download)."""

import json
import math
import pathlib

import tfrs_negatives as tfn
from tfrs_negatives.experiments.serving import parse_table
from tfrs_negatives.export import load_retrieval

import numpy as np
import pytest
from tests_support import load_script

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "movielens_mixed.py"


def _load_example():
    return load_script(EXAMPLE, "movielens_mixed")


@pytest.fixture(scope="module")
def example():
    return _load_example()


def test_runs_every_mix_end_to_end_on_mock_tfds(
    run_on, example, mock_ratings, mock_num_titles, tmp_path
):
    num_titles = mock_num_titles
    out = tmp_path / "results.json"
    ks = [1, 10, num_titles]
    results = run_on(
        mock_ratings,
        [
            "--epochs",
            "2",
            "--batch_size",
            "64",
            "--num_negatives",
            "16",
            "--ks",
            ",".join(map(str, ks)),
            "--output_json",
            str(out),
        ],
    )
    saved = json.loads(out.read_text())
    assert saved["source"] == "tfds:movielens/100k-ratings"
    assert saved["num_negatives"] == 16
    assert saved["num_titles"] == num_titles
    assert list(saved["results"]) == list(example.STRATEGIES)
    for name, row in saved["results"].items():
        assert row["n"] == 80  # 20% of 400
        assert math.isfinite(row["final_loss"]), name
        for prefix in ("", "head_", "tail_"):
            values = [row[f"{prefix}recall@{k}"] for k in ks]
            assert 0.0 <= values[0] <= values[1] <= values[2] <= 1.0, (name, prefix)
            # Every title ranks within the whole catalogue.
            assert values[2] == 1.0, (name, prefix)
        # Overall recall is the head/tail mix weighted by their test counts.
        n_head = row["n_head"]
        assert 0 < n_head < 80
        for k in ks:
            mixed = (
                n_head * row[f"head_recall@{k}"] + (80 - n_head) * row[f"tail_recall@{k}"]
            ) / 80
            assert row[f"recall@{k}"] == pytest.approx(mixed, abs=1e-9), (name, k)
    for name, row in results.items():
        assert saved["results"][name] == pytest.approx(row)


def test_every_mix_starts_from_the_same_weights(run_on, mock_ratings, tmp_path):
    out = tmp_path / "results.json"
    results = run_on(
        mock_ratings,
        ["--epochs", "0", "--num_negatives", "8", "--ks", "1,5,10", "--output_json", str(out)],
    )
    rows = [{k: v for k, v in row.items() if k != "train_seconds"} for row in results.values()]
    first = rows[0]
    assert np.isnan(first["final_loss"])  # no epoch: no loss, written as null
    assert json.loads(out.read_text())["results"]["full_softmax"]["final_loss"] is None
    for row in rows[1:]:
        assert row.keys() == first.keys()
        for key in first:
            if key != "final_loss":
                assert row[key] == first[key], key


def test_scann_export_of_the_best_mix_is_queried(run_on, mock_ratings, tmp_path, capsys):
    pytest.importorskip("scann")
    export = tmp_path / "export"
    flags = ["--epochs", "1", "--num_negatives", "8", "--ks", "1,10"]
    flags += ["--strategies", "inbatch_logq,inbatch+uniform"]
    run_on(mock_ratings, [*flags, "--export_dir", str(export), "--export_index", "scann"])
    printed = capsys.readouterr().out
    assert "(scann index)" in printed
    top = parse_table(printed.split("(python -m tfrs_negatives.export.query):")[1])
    assert len(top) == 3 and all(len(ids) == 10 for ids in top.values())
    assert load_retrieval(str(export)).metadata["requires_scann"]


def test_tasks_use_the_named_sources(example):
    titles = np.array([b"a", b"b", b"c", b"d"])
    counts = np.array([5, 0, 2, 1])
    tasks = {s: example.make_task(s, titles, counts, num_negatives=3) for s in example.STRATEGIES}

    def kinds(task):
        return [type(s).__name__ for s in task.negatives]

    assert kinds(tasks["inbatch_logq"]) == ["InBatch"]
    assert isinstance(tasks["inbatch_logq"].frequency, tfn.StreamingFrequencyEstimator)
    assert kinds(tasks["inbatch+uniform"]) == ["InBatch", "Uniform"]
    assert kinds(tasks["inbatch+popularity0.75"]) == ["InBatch", "Popularity"]
    assert kinds(tasks["uniform_only"]) == ["Uniform"]
    assert kinds(tasks["full_softmax"]) == ["FullCatalogue"]
    assert tasks["inbatch+uniform_bpr"].sampled_loss == "bpr"
    assert tasks["inbatch+uniform"].sampled_loss == "softmax"
    for name in ("inbatch+uniform", "inbatch+popularity0.75", "uniform_only"):
        task = tasks[name]
        assert task.sampled_sources[0].count == 3
        assert task.duplicates == "mask"
        assert task._remove_accidental_hits
    # Popularity over counts + 1: a title never rated in training can still be drawn.
    popularity = tasks["inbatch+popularity0.75"].sampled_sources[0]
    expected = (counts + 1.0) ** 0.75
    np.testing.assert_allclose(popularity.pmf().numpy(), expected / expected.sum(), rtol=1e-6)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--strategies", "inbatch+uniform,magic"], "unknown ['magic']"),
        (["--num_negatives", "0"], "--num_negatives must be >= 1, got 0"),
    ],
    ids=["strategy", "num_negatives"],
)
def test_bad_flags_exit_with_message(example, capsys, flags, message):
    with pytest.raises(SystemExit):
        example.run(flags)
    assert message in capsys.readouterr().err
