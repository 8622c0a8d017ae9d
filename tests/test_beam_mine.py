"""`tfrs_negatives.beam.mine_windows` on the DirectRunner against a NumPy brute force."""

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow loads)

import numpy as np
import pytest
import tensorflow as tf

beam = pytest.importorskip("apache_beam")

from tfrs_negatives.beam import mine_windows  # noqa: E402
from tfrs_negatives.beam.records import example_bytes  # noqa: E402
from tfrs_negatives.beam.window import merge_window, shard_top  # noqa: E402
from tfrs_negatives.experiments.compare import main  # noqa: E402
from tfrs_negatives.mining import read_mined_windows  # noqa: E402

WINDOW = (3, 9)


def _write_embedded(path, ids, embeddings, excludes=None):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row, (item_id, embedding) in enumerate(zip(ids, embeddings)):
            example = tf.train.Example.FromString(example_bytes(id=[item_id]))
            example.features.feature["embedding"].float_list.value.extend(embedding.tolist())
            if excludes is not None and excludes[row]:
                example.features.feature["exclude"].int64_list.value.extend(excludes[row])
            writer.write(example.SerializeToString())


def _read_windows(prefix):
    windows = {}
    for path in tf.io.gfile.glob(f"{prefix}-*-of-*"):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            windows[feature["anchor"].int64_list.value[0]] = list(
                feature["negatives"].int64_list.value
            )
    return windows


def _brute_force(anchor_ids, anchors, item_ids, items, excludes, window):  # noqa: PLR0913
    """Each anchor's admissible ranks `[min, max)` of the whole catalogue (float64, ties by id)."""
    scores = anchors.astype(np.float64) @ items.astype(np.float64).T
    expected = {}
    for a, row in enumerate(scores):
        order = np.lexsort((item_ids, -row))
        dropped = set(excludes[a]) | {anchor_ids[a]}
        admissible = [int(item_ids[i]) for i in order if item_ids[i] not in dropped]
        expected[int(anchor_ids[a])] = admissible[window[0] : window[1]]
    return expected


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A catalogue of 120 items with sparse ids; 30 anchors that are catalogue items."""
    root = tmp_path_factory.mktemp("mine")
    rng = np.random.default_rng(0)
    item_ids = 1000 + 7 * np.arange(120)
    items = rng.normal(size=[120, 8]).astype(np.float32)
    for shard in range(2):  # the catalogue in two files
        _write_embedded(root / f"catalogue-{shard}.tfrecord", item_ids[shard::2], items[shard::2])
    anchor_rows = rng.choice(120, 30, replace=False)
    excludes = [rng.choice(item_ids, rng.integers(0, 4), replace=False).tolist() for _ in range(30)]
    _write_embedded(root / "anchors.tfrecord", item_ids[anchor_rows], items[anchor_rows], excludes)
    expected = _brute_force(
        item_ids[anchor_rows], items[anchor_rows], item_ids, items, excludes, WINDOW
    )
    return root, expected


def test_exact_windows_over_three_shards_equal_brute_force(files):
    root, expected = files
    prefix = str(root / "out" / "mined")
    mine_windows(
        str(root / "catalogue-*"),
        str(root / "anchors.tfrecord"),
        prefix,
        WINDOW,
        num_shards=3,
        anchor_batch=7,
    )
    assert _read_windows(prefix) == expected
    assert not [p for p in (root / "out").iterdir() if p.name.startswith(".")]


def test_two_worker_processes_give_the_same_windows(files):
    root, expected = files
    prefix = str(root / "mp" / "mined")
    mine_windows(
        str(root / "catalogue-*"),
        str(root / "anchors.tfrecord"),
        prefix,
        WINDOW,
        num_shards=2,
        pipeline_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    )
    assert _read_windows(prefix) == expected


def test_merge_of_shards_equals_one_shard_with_ties_by_id():
    items = np.array([[1.0], [1.0], [2.0], [0.5], [1.0]])
    ids = [50, 10, 40, 30, 20]
    anchor = np.array([[1.0]])
    whole = shard_top(anchor, items, ids, [5])[0]
    assert list(whole.ids) == [40, 10, 20, 50, 30]  # 2 > 1 = 1 = 1 (by id) > 0.5
    parts = [shard_top(anchor, items[s::2], ids[s::2], [5])[0] for s in range(2)]
    assert merge_window(20, [40], parts, (0, 3)) == [10, 50, 30]


def test_window_beyond_the_catalogue_fails_and_leaves_nothing(files):
    root, _ = files
    with pytest.raises(Exception, match="fewer than the window's end 500"):
        mine_windows(
            str(root / "catalogue-*"),
            str(root / "anchors.tfrecord"),
            str(root / "big" / "m"),
            (100, 500),
            num_shards=2,
        )
    assert not list((root / "big").iterdir())


@pytest.mark.parametrize(
    "case, message",
    [
        ("duplicate", "appears twice"),
        ("dims", "differ in size|anchor embeddings have"),
        ("missing", "has no feature 'embedding'"),
        ("empty", "holds no records"),
    ],
)
def test_bad_input_names_the_problem_and_leaves_nothing(tmp_path, case, message):
    rng = np.random.default_rng(1)
    ids, items = np.arange(20), rng.normal(size=[20, 4]).astype(np.float32)
    catalogue, anchors = tmp_path / "catalogue.tfrecord", tmp_path / "anchors.tfrecord"
    _write_embedded(catalogue, ids, items)
    _write_embedded(anchors, ids[:5], items[:5])
    if case == "duplicate":
        _write_embedded(catalogue, np.r_[ids, 3], np.r_[items, items[:1]])
    elif case == "dims":
        _write_embedded(anchors, ids[:5], rng.normal(size=[5, 3]).astype(np.float32))
    elif case == "missing":
        with tf.io.TFRecordWriter(str(catalogue)) as writer:
            writer.write(example_bytes(id=[1]))
    elif case == "empty":
        tf.io.TFRecordWriter(str(anchors)).close()
    with pytest.raises(Exception, match=message):
        mine_windows(str(catalogue), str(anchors), str(tmp_path / "out" / "m"), (0, 4), 2)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_mine_command_passes_beam_flags_through(files, capsys):
    root, expected = files
    prefix = str(root / "cli" / "mined")
    code = main(
        [
            "mine", "--catalogue", str(root / "catalogue-*"), "--anchors",
            str(root / "anchors.tfrecord"), "--output", prefix, "--window", "3,9",
            "--num_shards", "2", "--runner", "DirectRunner", "--direct_num_workers", "1",
        ]
    )  # fmt: skip
    assert code == 0 and f"wrote {prefix}" in capsys.readouterr().out
    assert _read_windows(prefix) == expected
    with pytest.raises(SystemExit):
        main(["mine", "--catalogue", "x", "--anchors", "y", "--output", "z", "--window", "9"])
    assert "expected MIN,MAX" in capsys.readouterr().err


def test_training_side_reader_reads_the_mined_output(files):
    root, expected = files
    prefix = str(root / "read" / "mined")
    mine_windows(str(root / "catalogue-*"), str(root / "anchors.tfrecord"), prefix, WINDOW, 2)
    anchors, windows = read_mined_windows(f"{prefix}-*-of-*")
    assert {int(a): w.tolist() for a, w in zip(anchors, windows)} == expected
