"""The MovieLens hard-negatives example end to end on tfds mock data (no download)."""

import argparse
import json
import math
import pathlib

import tfrs_negatives as tfn
from tfrs_negatives.experiments import hard_negatives, warmup_schedule

import numpy as np
import pytest
import tensorflow as tf
from tests_support import load_script

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "movielens_hard_negatives.py"
MINED = ("mixed+hard_window", "mixed+hard_query", "logq+hard_window", "hardest_only")
# Tiny windows and counts that fit the mock catalogue (a few dozen titles).
TINY = [
    "--batch_size",
    "64",
    "--num_negatives",
    "16",
    "--hard_count",
    "2",
    "--hard_window",
    "2,8",
    "--hardest_window",
    "0,3",
]


def _load_example():
    return load_script(EXAMPLE, "movielens_hard_negatives")


@pytest.fixture(scope="module")
def example():
    return _load_example()


def test_every_strategy_end_to_end_on_mock_tfds(
    run_on, example, mock_ratings, mock_num_titles, tmp_path
):
    out = tmp_path / "results.json"
    ks = [1, 5, mock_num_titles]
    epochs = 3
    results = run_on(
        mock_ratings,
        TINY
        + [
            "--epochs",
            str(epochs),
            "--hard_warmup_epochs",
            "1",
            "--hard_ramp_epochs",
            "0.6",
            "--ks",
            ",".join(map(str, ks)),
            "--output_json",
            str(out),
        ],
    )
    saved = json.loads(out.read_text())
    assert saved["source"] == "tfds:movielens/100k-ratings"
    assert saved["miner"] == "brute"
    assert saved["num_titles"] == mock_num_titles
    assert saved["num_users"] == 25
    assert saved["steps_per_epoch"] == 5  # ceil(320 / 64)
    # Warm-up of one epoch (5 steps) at 0, then up to 2 over 0.6 epochs (3 steps).
    assert saved["count_schedule"] == [[0, 0], [5, 0], [8, 2]]
    assert list(saved["results"]) == list(example.STRATEGIES)
    assert list(results) == list(example.STRATEGIES)
    for name, row in saved["results"].items():
        assert row["n"] == 80  # 20% of 400
        assert math.isfinite(row["final_loss"]), name
        for prefix in ("", "head_", "tail_"):
            values = [row[f"{prefix}recall@{k}"] for k in ks]
            assert 0.0 <= values[0] <= values[1] <= values[2] <= 1.0, (name, prefix)
            assert values[2] == 1.0, (name, prefix)  # every title ranks within the catalogue
        n_head = row["n_head"]
        assert 0 < n_head < 80
        for k in ks:
            mixed = (
                n_head * row[f"head_recall@{k}"] + (80 - n_head) * row[f"tail_recall@{k}"]
            ) / 80
            assert row[f"recall@{k}"] == pytest.approx(mixed, abs=1e-9), (name, k)
        # JSON holds what run() returned (NaN written as null).
        for key, value in results[name].items():
            if math.isnan(value):
                assert row[key] is None, (name, key)
            else:
                assert row[key] == pytest.approx(value), (name, key)

    assert set(saved["mining"]) == set(MINED)
    for name in MINED:
        row, info = saved["results"][name], saved["mining"][name]
        # Refreshed at the start of training and of every later epoch, never failing.
        assert row["refreshes"] == epochs
        assert row["refresh_failures"] == 0
        assert len(info["refresh_timings"]) == epochs
        assert all(t > 0 for t in info["refresh_timings"])
        assert row["refresh_seconds"] == pytest.approx(sum(info["refresh_timings"]))
        assert row["mined_count_final"] == 2  # the curriculum reached the full count
        # Every anchor has admissible entries here, so no example fell back to uniform.
        assert info["empty_anchors"] == [0] * epochs
        assert row["fallbacks"] == 0
        assert 0.0 <= row["false_negative_rate"] <= 1.0
        assert info["mined_for_false_negative_rate"] > 0
    assert saved["mining"]["mixed+hard_query"]["side"] == "query"
    assert saved["mining"]["mixed+hard_window"]["window"] == [2, 8]
    assert saved["mining"]["hardest_only"]["side"] == "item"
    assert saved["mining"]["hardest_only"]["window"] == [0, 3]
    for name in ("logq", "mixed"):
        row = saved["results"][name]
        assert row["refreshes"] == 0
        assert row["fallbacks"] is None and row["false_negative_rate"] is None
    # The mined terms are in the loss: with the same start and the same uniform draws,
    # adding them changes it.
    assert results["mixed+hard_window"]["final_loss"] != results["mixed"]["final_loss"]


def test_mined_source_at_count_zero_changes_nothing(run_on, mock_ratings):
    # A warm-up longer than training keeps the mined count at 0: the run is `mixed`'s.
    results = run_on(
        mock_ratings,
        TINY
        + [
            "--epochs",
            "1",
            "--hard_warmup_epochs",
            "2",
            "--strategies",
            "mixed,mixed+hard_window",
            "--ks",
            "1,5,10",
        ],
    )
    plain, hard = results["mixed"], results["mixed+hard_window"]
    assert hard["mined_count_final"] == 0
    assert hard["refreshes"] == 1
    for key, value in plain.items():
        if key in ("train_seconds", "refresh_seconds") or math.isnan(value):
            continue
        if key != "refreshes":
            assert hard[key] == pytest.approx(value, rel=1e-5), key


def test_scann_miner_refreshes_the_table(run_on, mock_ratings):
    pytest.importorskip("scann")
    results = run_on(
        mock_ratings,
        TINY
        + [
            "--epochs",
            "2",
            "--miner",
            "scann",
            "--hard_warmup_epochs",
            "0",
            "--strategies",
            "mixed+hard_query",
            "--ks",
            "1,5,10",
        ],
    )
    row = results["mixed+hard_query"]
    assert row["refreshes"] == 2 and row["refresh_failures"] == 0
    assert row["mined_count_final"] == 2
    assert 0.0 <= row["recall@1"] <= row["recall@5"] <= row["recall@10"] <= 1.0


def test_tasks_use_the_named_sources():
    users = np.array([b"u0", b"u1", b"u2"])
    titles = np.array([b"a", b"b", b"c", b"d", b"e", b"f"])
    train_users = np.array([b"u0", b"u0", b"u1", b"u2"])
    train_titles = np.array([b"a", b"c", b"b", b"f"])
    known = tfn.mining.KnownPositives(train_users, train_titles)

    data = hard_negatives.TaskData(users, titles, train_users, train_titles, known)
    options = hard_negatives.HardOptions(
        num_negatives=4, hard_count=2, hard_window=(1, 4), hardest_window=(0, 2)
    )

    def make(strategy):
        return hard_negatives.make_task(strategy, data, options)

    kinds = {}
    for strategy in hard_negatives.STRATEGIES:
        task, mining = make(strategy)
        kinds[strategy] = [type(s).__name__ for s in task.negatives]
        assert isinstance(task.frequency, tfn.StreamingFrequencyEstimator)
        assert task._remove_accidental_hits
        if mining is None:
            continue
        # Mined columns have q = 1: only inclusion probabilities ("mask") match that scale.
        assert task.duplicates == "mask"
        assert mining.source.count == 2
        assert mining.source.known_positives is known
        assert mining.table.window == mining.miner.window
    assert kinds["logq"] == ["InBatch"]
    assert kinds["mixed"] == ["InBatch", "Uniform"]
    assert kinds["mixed+hard_window"] == ["InBatch", "Uniform", "Mined"]
    assert kinds["mixed+hard_query"] == ["InBatch", "Uniform", "Mined"]
    assert kinds["logq+hard_window"] == ["InBatch", "Mined"]
    assert kinds["hardest_only"] == ["InBatch", "Mined"]
    assert kinds["full_softmax"] == ["FullCatalogue"]

    _, item_side = make("mixed+hard_window")
    assert item_side.source.side == "item"
    assert (item_side.miner.min_rank, item_side.miner.max_rank) == (1, 4)
    assert item_side.table.anchors.size == len(titles) and item_side.excluded is None
    _, query_side = make("mixed+hard_query")
    assert query_side.source.side == "query"
    assert query_side.table.anchors.size == len(users)
    # Each user's training titles, as catalogue rows, are dropped from its ranking.
    assert [e.tolist() for e in query_side.excluded] == [[0, 2], [1], [5]]
    _, hardest = make("hardest_only")
    assert (hardest.miner.min_rank, hardest.miner.max_rank) == (0, 2)


def test_count_schedule():
    assert warmup_schedule(8, 10, 1, 1) == [(0, 0), (10, 0), (20, 8)]
    assert warmup_schedule(8, 10, 0, 1) == [(0, 0), (10, 8)]
    assert warmup_schedule(8, 10, 1, 0) == [(0, 0), (9, 0), (10, 8)]
    assert warmup_schedule(8, 10, 0, 0) == [(0, 8)]
    curriculum = tfn.callbacks.NegativeCurriculum(
        {tfn.negatives.Uniform(np.arange(5), 8): {"count": warmup_schedule(8, 10, 1, 1)}}
    )
    counts = [curriculum.values_at(t)[0][1] for t in (0, 9, 10, 15, 20, 30)]
    assert counts == [0, 0, 0, 4, 8, 8]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--strategies", "mixed,magic"], "unknown ['magic']"),
        (["--hard_count", "20", "--hard_window", "2,8"],
         "--hard_count 20 exceeds the --hard_window of 6 ranks"),
        (["--hard_window", "8,2"], "--hard_window needs 0 <= lo < hi, got [8, 2)"),
        (["--miner", "faiss"], "invalid choice: 'faiss'"),
    ],
    ids=["strategy", "count beyond window", "window order", "miner"],
)  # fmt: skip
def test_bad_flags_exit_with_message(example, capsys, flags, message):
    with pytest.raises(SystemExit):
        example.run(flags)
    assert message in capsys.readouterr().err


def _with_genres(dataset):
    """The mock ratings plus `movie_genres`: title k has genres {k % 21, 7k % 21} (ragged)."""
    columns = {k: np.array(v) for k, v in next(dataset.batch(10_000).as_numpy_iterator()).items()}
    ks = [int(t.split()[-1]) for t in columns["movie_title"]]
    genres = [sorted({k % 21, (7 * k) % 21}) for k in ks]
    columns["movie_genres"] = tf.ragged.constant(genres, dtype=tf.int64)
    return tf.data.Dataset.from_tensor_slices(columns), dict(zip(columns["movie_title"], genres))


def test_content_tower_with_weighted_top_mined_negatives(run_on, mock_ratings, tmp_path):
    dataset, genres = _with_genres(mock_ratings)
    out = tmp_path / "results.json"
    flags = TINY + ["--epochs", "2", "--item_tower", "content", "--hard_warmup_epochs", "0"]
    flags += ["--hard_ramp_epochs", "0", "--hard_weight", "0.5", "--hard_sample", "top"]
    flags += ["--hard_margin", "0.1", "--refresh_every_steps", "3", "--ks", "1,5,10"]
    flags += ["--strategies", "full_softmax,mixed,mixed+hard_window", "--output_json", str(out)]
    results = run_on(dataset, flags)
    saved = json.loads(out.read_text())
    assert saved["item_tower"] == "content"
    assert (saved["hard_weight"], saved["hard_sample"], saved["hard_margin"]) == (0.5, "top", 0.1)
    for row in results.values():
        assert math.isfinite(row["final_loss"])
        assert 0.0 <= row["recall@1"] <= row["recall@5"] <= row["recall@10"] <= 1.0
    # 2 epochs of 5 steps: refreshed at the start and at steps 3, 6 and 9.
    assert results["mixed+hard_window"]["refreshes"] == 4
    assert results["full_softmax"]["refreshes"] == 0


def test_title_genres_are_each_titles_multi_hot(mock_ratings, serve_from_tfds):
    dataset, genres = _with_genres(mock_ratings)
    titles = np.array(sorted(genres))
    args = argparse.Namespace(config="100k-ratings", movielens_dir=None)
    with serve_from_tfds(dataset):
        table = hard_negatives.title_genres(args, titles)
    assert table.shape == (len(titles), hard_negatives.NUM_GENRES)
    for title, row in zip(titles, table):
        assert np.flatnonzero(row).tolist() == genres[title]
    with serve_from_tfds(mock_ratings):
        with pytest.raises(ValueError, match="movie_genres"):
            hard_negatives.title_genres(args, titles)


def test_benchmark_summary_means_spreads_and_paired_differences():
    driver = load_script(
        EXAMPLE.parents[1] / "benchmarks" / "hard_negatives_movielens.py", "hn_movielens_bench"
    )
    keys = ("recall@10", "recall@50", "recall@100", "head_recall@100", "tail_recall@100")

    def row(r100, tail):
        return dict(zip(keys, (0.05, 0.2, r100, 0.6, tail)))

    per_seed = {
        1: {"mixed": row(0.390, 0.150), "hard": row(0.395, 0.160)},
        2: {"mixed": row(0.392, 0.140), "hard": row(0.393, 0.146)},
    }
    lines = driver.summarise(per_seed, "mixed")
    text = "\n".join(lines)
    # mixed: mean R@100 0.391, spread 0.002; tail mean 0.145 <= 0.149 -> does not clear.
    mixed = next(line for line in lines if line.startswith("mixed"))
    assert "0.3910 (0.0020)" in mixed and mixed.endswith("no")
    # hard: R@100 0.394 >= 0.393 and tail 0.153 > 0.149 -> clears.
    hard = next(line for line in lines if line.startswith("hard"))
    assert "0.3940 (0.0020)" in hard and hard.endswith("yes")
    # Paired R@100: +0.005 and +0.001 -> mean +0.003 in [+0.001, +0.005].
    assert "+0.0030 [+0.0010, +0.0050]" in text


def test_content_only_tower_end_to_end(run_on, mock_ratings):
    dataset, _ = _with_genres(mock_ratings)
    flags = TINY + ["--epochs", "1", "--item_tower", "content_only", "--hard_warmup_epochs", "0"]
    flags += ["--strategies", "mixed+hard_window", "--ks", "1,5,10"]
    row = run_on(dataset, flags)["mixed+hard_window"]
    assert math.isfinite(row["final_loss"]) and row["refreshes"] == 1
    assert 0.0 <= row["recall@1"] <= row["recall@5"] <= row["recall@10"] <= 1.0


def test_under_mirrored_strategy_trains_as_one_device(run_on, example, mock_ratings):
    """4 replicas (the test process's logical CPUs), global negatives: a deterministic
    run (in-batch, and the window's top mined titles, refreshed each epoch under the
    strategy) trains as on one device."""
    tf.distribute.MirroredStrategy._collective_key_base += 10_000
    flags = TINY + ["--epochs", "2", "--hard_warmup_epochs", "0.4", "--hard_ramp_epochs", "0"]
    flags += ["--hard_sample", "top", "--strategies", "logq+hard_window", "--ks", "1,5,10"]
    one = run_on(mock_ratings, flags)
    four = run_on(mock_ratings, flags + ["--distribution", "mirrored"])
    for name, row in one.items():
        for key in ("recall@1", "recall@5", "recall@10", "final_loss", "refreshes"):
            assert four[name][key] == pytest.approx(row[key], rel=1e-4, abs=1e-6), (name, key)
    assert four["logq+hard_window"]["refreshes"] == 2
