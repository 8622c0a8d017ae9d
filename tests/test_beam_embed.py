"""`tfrs_negatives.beam.embed_records` on the DirectRunner against the towers run in process."""

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow loads)

import numpy as np
import pytest
import tensorflow as tf

beam = pytest.importorskip("apache_beam")

from tfrs_negatives.beam import embed_records, mine_windows  # noqa: E402
from tfrs_negatives.experiments.compare import main  # noqa: E402
from tfrs_negatives.export import save_tower  # noqa: E402

from tests_support import seeded_string_towers  # noqa: E402

DIM = 6
USERS = np.array([f"user{i}" for i in range(25)])
TITLES = np.array([f"item{i}" for i in range(40)])
ITEM_IDS = 1000 + 7 * np.arange(40)
USER_IDS = 5000 + np.arange(25)


def _write(path, rows):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for features in rows:
            example = tf.train.Example()
            for key, value in features.items():
                values = value if isinstance(value, list) else [value]
                feature = example.features.feature[key]
                if isinstance(values[0], float):
                    feature.float_list.value.extend(values)
                elif isinstance(values[0], bytes):
                    feature.bytes_list.value.extend(values)
                else:
                    feature.int64_list.value.extend(int(v) for v in values)
            writer.write(example.SerializeToString())


def _item_rows(titles=TITLES, ids=ITEM_IDS):
    return [{"id": int(i), "title": t.encode()} for i, t in zip(ids, titles)]


def _read(prefix):
    """`{id: embedding}` and the other features of every output record."""
    embeddings, others = {}, {}
    for path in tf.io.gfile.glob(f"{prefix}-*-of-*"):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            kind = feature["id"].WhichOneof("kind")
            item_id = getattr(feature["id"], kind).value[0]
            assert item_id not in embeddings, f"id {item_id!r} written twice"
            embeddings[item_id] = np.asarray(feature["embedding"].float_list.value)
            others[item_id] = {k: feature[k] for k in feature if k not in ("id", "embedding")}
    return embeddings, others


def _dict_tower():
    """Functional query tower over {"user_id": string, "age": float32}."""
    user = tf.keras.Input(shape=(), dtype=tf.string, name="user_id")
    age = tf.keras.Input(shape=(), dtype=tf.float32, name="age")
    embedded = tf.keras.layers.Embedding(len(USERS) + 1, DIM)(
        tf.keras.layers.StringLookup(vocabulary=USERS)(user)
    )
    return tf.keras.Model(
        {"user_id": user, "age": age}, embedded + tf.keras.layers.Dense(DIM)(age[:, None])
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two exported towers, the NumPy references of their outputs, and their input files."""
    root = tmp_path_factory.mktemp("embed")
    tf.keras.utils.set_random_seed(0)
    _, items = seeded_string_towers(USERS, TITLES, DIM, seed=2)
    users = _dict_tower()
    save_tower(items, str(root / "items"), {"title": tf.TensorSpec([None], tf.string)})
    save_tower(
        users,
        str(root / "users"),
        {"user_id": tf.TensorSpec([None], tf.string), "age": tf.TensorSpec([None], tf.float32)},
    )
    rows = _item_rows()
    for part in range(2):  # the items in two files
        _write(root / f"items-{part}.tfrecord", rows[part::2])
    ages = np.linspace(18.0, 70.0, len(USERS)).astype(np.float32)
    rng = np.random.default_rng(0)
    excludes = [rng.choice(ITEM_IDS, 2, replace=False).tolist() for _ in USERS]
    _write(
        root / "users.tfrecord",
        [
            {"id": int(i), "user_id": u.encode(), "age": float(a), "exclude": e}
            for i, u, a, e in zip(USER_IDS, USERS, ages, excludes)
        ],
    )
    expected = {
        "items": dict(zip(ITEM_IDS.tolist(), items(tf.constant(TITLES)).numpy())),
        "users": dict(
            zip(
                USER_IDS.tolist(),
                users({"user_id": tf.constant(USERS), "age": tf.constant(ages)}).numpy(),
            )
        ),
        "excludes": dict(zip(USER_IDS.tolist(), excludes)),
    }
    return root, expected


def _assert_embeddings(got, expected):
    assert sorted(got) == sorted(expected)
    for item_id, embedding in expected.items():
        np.testing.assert_allclose(got[item_id], embedding, atol=1e-5, err_msg=str(item_id))


def test_int_ids_over_two_files_in_two_worker_processes(setup):
    root, expected = setup
    prefix = str(root / "mp" / "catalogue")
    returned = embed_records(
        str(root / "items"),
        str(root / "items-*.tfrecord"),
        prefix,
        batch_size=7,
        pipeline_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    )
    assert returned == prefix
    got, _ = _read(prefix)
    _assert_embeddings(got, expected["items"])
    assert not [p for p in (root / "mp").iterdir() if p.name.startswith(".")]


def test_bytes_ids_that_are_also_the_model_input(setup):
    root, expected = setup
    prefix = str(root / "bytes" / "catalogue")
    embed_records(str(root / "items"), str(root / "items-*.tfrecord"), prefix, id_key="title")
    got, _ = _read(prefix)
    by_title = dict(zip((t.encode() for t in TITLES), expected["items"].values()))
    _assert_embeddings(got, by_title)


def test_item_and_query_sides_feed_mine(setup):
    root, expected = setup
    catalogue, anchors = str(root / "mine" / "catalogue"), str(root / "mine" / "anchors")
    embed_records(str(root / "items"), str(root / "items-*.tfrecord"), catalogue)
    embed_records(str(root / "users"), str(root / "users.tfrecord"), anchors, keep=["exclude"])
    got, kept = _read(anchors)
    _assert_embeddings(got, expected["users"])  # a dict tower: two inputs of two kinds
    excludes = {i: list(f["exclude"].int64_list.value) for i, f in kept.items()}
    assert excludes == expected["excludes"]
    mined = str(root / "mine" / "mined")
    mine_windows(f"{catalogue}-*-of-*", f"{anchors}-*-of-*", mined, (2, 7), num_shards=2)
    windows = {}
    for path in tf.io.gfile.glob(f"{mined}-*-of-*"):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            feature = tf.train.Example.FromString(record).features.feature
            windows[feature["anchor"].int64_list.value[0]] = feature["negatives"].int64_list.value
    assert sorted(windows) == USER_IDS.tolist()
    for anchor, negatives in windows.items():
        assert len(negatives) == 5 and not set(negatives) & set(expected["excludes"][anchor])
        assert set(negatives) <= set(ITEM_IDS.tolist())


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", r"items-1\.tfrecord: record id=1007 has no feature 'title'"),
        ("kind", r"items-1\.tfrecord: record id=1007: feature 'title' must be a bytes_list"),
        ("nonfinite", r"users\.tfrecord: record id=5003: the model's embedding holds NaN"),
    ],
)
def test_bad_input_names_file_and_record_and_leaves_nothing(setup, tmp_path, case, message):
    root, _ = setup
    model, records = "items", str(tmp_path / "items-*.tfrecord")
    rows = _item_rows()
    if case == "nonfinite":
        model, records = "users", str(tmp_path / "users.tfrecord")
        rows = [
            {"id": int(i), "user_id": u.encode(), "age": float("inf") if i == 5003 else 30.0}
            for i, u in zip(USER_IDS, USERS)
        ]
        _write(records, rows)
    else:
        broken = rows[1]
        del broken["title"]
        if case == "kind":
            broken["title"] = 7
        _write(tmp_path / "items-0.tfrecord", rows[0::2])
        _write(tmp_path / "items-1.tfrecord", rows[1::2])
    with pytest.raises(Exception, match=message):
        embed_records(str(root / model), records, str(tmp_path / "out" / "e"))
    assert not list((tmp_path / "out").iterdir())


def test_unknown_signature_names_the_available_ones(setup, tmp_path):
    root, _ = setup
    with pytest.raises(ValueError, match=r"'serve_me' is not in .*signatures are \['serving_"):
        embed_records(
            str(root / "items"), str(root / "items-0.tfrecord"), str(tmp_path / "e"),
            signature="serve_me",
        )  # fmt: skip
    with pytest.raises(FileNotFoundError, match="SavedModel directory"):
        embed_records(str(tmp_path), str(root / "items-0.tfrecord"), str(tmp_path / "e"))
    with pytest.raises(FileNotFoundError, match="matches no file"):
        embed_records(str(root / "items"), str(tmp_path / "none-*"), str(tmp_path / "e"))
    with pytest.raises(ValueError, match="must not name the output's own features"):
        embed_records(
            str(root / "items"), str(root / "items-0.tfrecord"), str(tmp_path / "e"), keep=["id"]
        )
    assert not list(tmp_path.iterdir())


def test_existing_output_needs_overwrite(setup, tmp_path):
    root, expected = setup
    prefix = str(tmp_path / "e")
    _write(tmp_path / "few.tfrecord", _item_rows()[:3])
    embed_records(str(root / "items"), str(tmp_path / "few.tfrecord"), prefix)
    with pytest.raises(FileExistsError, match="--overwrite"):
        embed_records(str(root / "items"), str(root / "items-0.tfrecord"), prefix)
    assert sorted(_read(prefix)[0]) == ITEM_IDS[:3].tolist()
    embed_records(str(root / "items"), str(root / "items-0.tfrecord"), prefix, overwrite=True)
    assert sorted(_read(prefix)[0]) == ITEM_IDS[0::2].tolist()


def test_embed_command_passes_beam_flags_through(setup, capsys):
    root, expected = setup
    prefix = str(root / "cli" / "catalogue")
    code = main(
        [
            "embed", "--model", str(root / "items"), "--records", str(root / "items-*.tfrecord"),
            "--output", prefix, "--batch_size", "5", "--runner", "DirectRunner",
            "--direct_num_workers", "1",
        ]
    )  # fmt: skip
    assert code == 0 and f"wrote {prefix}" in capsys.readouterr().out
    _assert_embeddings(_read(prefix)[0], expected["items"])
    with pytest.raises(SystemExit):
        main(["embed", "--model", "m", "--records", "r", "--output", "o", "--batch_size", "x"])
    assert "invalid int value" in capsys.readouterr().err
