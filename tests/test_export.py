"""`save_retrieval` / `load_retrieval`: exported models queried in fresh Python processes.

Three models are exported once (module fixture) from towers with seeded weights, 300
string-id candidates of dimension 8 and 40 string user ids: exact (`k=10`), exact with an
exclusion input, ScaNN with an exclusion input; and one exact model whose query tower takes
a dict of features over 12 integer-id candidates. Each checking script then runs in its own
`sys.executable` process (the ones that load ScaNN models the way a server would), all at
once, against the NumPy reference scores `Q @ C^T` saved beside the models.
"""

import json
import os
import subprocess
import sys
import textwrap

from tfrs_negatives.export import EMPTY_SCORE, load_retrieval, save_retrieval

import numpy as np
import pytest
import tensorflow as tf
from tests_support import seeded_string_towers

K = 10
DIM = 8
USERS = np.array([f"user{i}" for i in range(40)])
ITEMS = np.array([f"item{i}" for i in range(300)])
INSTALL = 'pip install "scann[tf]==1.4.2"'


def _towers(seed=0):
    """StringLookup + Embedding towers with seeded weights, built (as after training)."""
    return seeded_string_towers(USERS, ITEMS, DIM, seed)


def _dict_query_tower():
    """Functional tower over {"user_id": string, "age": float32} features."""
    user = tf.keras.Input(shape=(), dtype=tf.string, name="user_id")
    age = tf.keras.Input(shape=(), dtype=tf.float32, name="age")
    embedded = tf.keras.layers.Embedding(41, DIM)(
        tf.keras.layers.StringLookup(vocabulary=USERS)(user)
    )
    return tf.keras.Model(
        {"user_id": user, "age": age}, embedded + tf.keras.layers.Dense(DIM)(age[:, None])
    )


# Each script prints one JSON line; `ROOT` (the export directory) is prepended.
STOCK_TF = """
import json, os
import numpy as np
import tensorflow as tf  # plain TensorFlow: no tfrs_negatives, no ScaNN
out = {"keras_env": os.environ.get("TF_USE_LEGACY_KERAS")}
model = tf.saved_model.load(os.path.join(ROOT, "exact"))
users = np.load(os.path.join(ROOT, "users.npy"))
got = model.signatures["serving_default"](query=tf.constant(users))
out["ids"] = [[i.decode() for i in row] for row in got["ids"].numpy()]
out["scores"] = got["scores"].numpy().tolist()
try:
    tf.saved_model.load(os.path.join(ROOT, "scann"))
    out["scann_error"] = None
except Exception as err:
    out["scann_error"] = str(err)[:300]
print(json.dumps(out))
"""

LOADER = """
import json, os
import tfrs_negatives
from tfrs_negatives.export import load_retrieval
import numpy as np
import tensorflow as tf
users = tf.constant(np.load(os.path.join(ROOT, "users.npy")))
exclude = tf.constant(np.load(os.path.join(ROOT, "exclude.npy")))
out = {}
for name in ("exact_exclude", "scann"):
    model = load_retrieval(os.path.join(ROOT, name))
    serve = model.signatures["serving_default"]
    none = tf.zeros([users.shape[0], 0], tf.string)
    for tag, ex in (("plain", none), ("excluded", exclude)):
        got = serve(query=users, exclude=ex)
        out[f"{name}/{tag}"] = [[i.decode() for i in row] for row in got["ids"].numpy()]
    same = model.serve({"query": users, "exclude": exclude})["ids"].numpy()
    out[f"{name}/serve_matches_signature"] = bool(
        (same == serve(query=users, exclude=exclude)["ids"].numpy()).all())
    out[f"{name}/metadata"] = model.metadata
model = load_retrieval(os.path.join(ROOT, "dict_int"))
got = model.signatures["serving_default"](
    user_id=users[:2], age=tf.constant([0.5, -1.0]),
    exclude=tf.constant([[0, 1, 2, 3, 4], [99, 99, 99, 99, 99]], tf.int64))
out["dict_int/ids"] = got["ids"].numpy().tolist()
out["dict_int/scores"] = got["scores"].numpy().tolist()
print(json.dumps(out))
"""

NO_SCANN = """
import json, os, sys
sys.modules["scann"] = None  # as if ScaNN were not installed
import tfrs_negatives
from tfrs_negatives.export import load_retrieval
out = {}
try:
    load_retrieval(os.path.join(ROOT, "scann"))
    out["error"] = None
except ImportError as err:
    out["error"] = str(err)
model = load_retrieval(os.path.join(ROOT, "exact"))  # needs no ScaNN
out["exact_loaded"] = "serving_default" in model.signatures
print(json.dumps(out))
"""


def _spawn(script, root):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_USE_LEGACY_KERAS", None)  # a fresh process, not this one's environment
    code = f"ROOT = {str(root)!r}\n" + textwrap.dedent(script)
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _cli(root, name):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    args = ["show", "--dir", str(root / name), "--tag_set", "serve"]
    return subprocess.Popen(
        [cli, *args, "--signature_def", "serving_default"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Exports the models, runs every fresh-process check concurrently, returns outputs."""
    root = tmp_path_factory.mktemp("export")
    query, item = _towers()
    rng = np.random.default_rng(1)
    save_retrieval(query, ITEMS, root / "exact", k=K, candidate_tower=item)
    save_retrieval(query, ITEMS, root / "exact_exclude", k=K, candidate_tower=item, exclude=True)
    save_retrieval(
        query, ITEMS, root / "scann", index="scann", k=K, candidate_tower=item, exclude=True
    )
    dict_tower = _dict_query_tower()
    dict_tower({"user_id": tf.constant(USERS[:2]), "age": tf.constant([0.0, 1.0])})
    dict_candidates = rng.normal(size=(12, DIM))
    save_retrieval(
        dict_tower,
        np.arange(12, dtype=np.int64),
        root / "dict_int",
        k=K,
        candidate_embeddings=dict_candidates,
        exclude=True,
    )
    q = query(tf.constant(USERS)).numpy().astype(np.float64)
    c = item(tf.constant(ITEMS)).numpy().astype(np.float64)
    scores = q @ c.T
    # Per user: the true best 3, 4 random others, and "" / unknown ids as padding.
    exclude = np.array(
        [
            list(ITEMS[np.argsort(-s)[:3]]) + list(rng.choice(ITEMS, 4)) + ["", "no-such-item"]
            for s in scores
        ]
    )
    np.save(root / "users.npy", USERS)
    np.save(root / "exclude.npy", exclude)
    dict_q = dict_tower(
        {"user_id": tf.constant(USERS[:2]), "age": tf.constant([0.5, -1.0])}
    ).numpy()
    procs = {
        "stock_tf": _spawn(STOCK_TF, root),
        "loader": _spawn(LOADER, root),
        "no_scann": _spawn(NO_SCANN, root),
        "cli_exact": _cli(root, "exact"),
        "cli_scann": _cli(root, "scann"),
    }
    outputs = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name} failed:\n{stderr[-3000:]}"
        outputs[name] = stdout if name.startswith("cli") else json.loads(stdout.splitlines()[-1])
    return {
        "root": root,
        "scores": scores,
        "exclude": exclude,
        "dict_scores": dict_q.astype(np.float64) @ dict_candidates.T,
        **outputs,
    }


def _reference(scores, exclude=None, k=K):
    """Ids of the best `k` items per row of `scores`, leaving out `exclude[row]`."""
    rows = []
    for row, s in enumerate(scores):
        order = [ITEMS[j] for j in np.argsort(-s, kind="stable")]
        if exclude is not None:
            order = [i for i in order if i not in set(exclude[row])]
        rows.append(order[:k])
    return rows


def _overlap(got, want):
    return np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)])


def test_exact_export_in_stock_tensorflow_is_the_numpy_top_k(exported):
    assert exported["stock_tf"]["ids"] == _reference(exported["scores"])
    want = -np.sort(-exported["scores"], axis=1)[:, :K]
    np.testing.assert_allclose(exported["stock_tf"]["scores"], want, rtol=1e-5, atol=1e-5)
    assert exported["stock_tf"]["keras_env"] is None  # loaded without tfrs_negatives


def test_scann_export_needs_scann_ops_in_stock_tensorflow(exported):
    assert "Scann>" in exported["stock_tf"]["scann_error"]


def test_scann_export_overlaps_exact_top_10(exported):
    got = exported["loader"]["scann/plain"]
    assert _overlap(got, _reference(exported["scores"])) >= 0.95


def test_exclusion_is_exact_top_k_of_the_rest(exported):
    scores, exclude = exported["scores"], exported["exclude"]
    assert exported["loader"]["exact_exclude/plain"] == _reference(scores)
    assert exported["loader"]["exact_exclude/excluded"] == _reference(scores, exclude)
    scann = exported["loader"]["scann/excluded"]
    assert all(not set(row) & set(ex) for row, ex in zip(scann, exclude))
    assert _overlap(scann, _reference(scores, exclude)) >= 0.95
    assert exported["loader"]["exact_exclude/serve_matches_signature"]
    assert exported["loader"]["scann/serve_matches_signature"]


def test_dict_features_integer_ids_and_empty_slots(exported):
    # 12 candidates, k=10: row 0 excludes 5 of them, so 7 remain and 3 slots are empty.
    ids, scores = exported["loader"]["dict_int/ids"], exported["loader"]["dict_int/scores"]
    order = np.argsort(-exported["dict_scores"], axis=1, kind="stable")
    assert ids[0] == [j for j in order[0] if j >= 5][:7] + [-1, -1, -1]
    assert scores[0][7:] == [EMPTY_SCORE] * 3
    assert ids[1] == order[1][:K].tolist()  # 99 is not a candidate: nothing excluded
    np.testing.assert_allclose(
        scores[1], np.sort(exported["dict_scores"][1])[::-1][:K], rtol=1e-5, atol=1e-5
    )


def test_load_retrieval_without_scann_names_the_install_command(exported):
    assert INSTALL in exported["no_scann"]["error"]
    assert exported["no_scann"]["exact_loaded"]


def test_metadata_describes_the_export(exported):
    meta = exported["loader"]["scann/metadata"]
    assert meta["index"] == "scann" and meta["k"] == K and meta["num_candidates"] == 300
    assert meta["inputs"] == {
        "query": {"dtype": "string", "shape": [None]},
        "exclude": {"dtype": "string", "shape": [None, None]},
    }
    assert meta["requires_scann"] and meta["scann_options"]["num_leaves"] == 0


@pytest.mark.parametrize("name", ["exact", "scann"])
def test_saved_model_cli_lists_documented_signature(exported, name):
    text = exported[f"cli_{name}"]
    inputs, outputs = text.split("output(s):")
    assert "inputs['query'] tensor_info:\n      dtype: DT_STRING\n      shape: (-1)" in inputs
    assert ("inputs['exclude']" in inputs) == (name == "scann")
    if name == "scann":
        assert "inputs['exclude'] tensor_info:\n      dtype: DT_STRING\n      shape: (-1, -1)" in (
            inputs
        )
    assert "outputs['ids'] tensor_info:\n      dtype: DT_STRING\n      shape: (-1, 10)" in outputs
    assert "outputs['scores'] tensor_info:\n      dtype: DT_FLOAT\n      shape: (-1, 10)" in outputs
    assert "Method name is: tensorflow/serving/predict" in text


# ---- bad input (in this process) ----


@pytest.fixture(scope="module")
def towers():
    return _towers()


def _leftovers(parent):
    return [p for p in os.listdir(parent) if ".partial-" in p or ".old-" in p]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"candidates": []}, ValueError, "`candidates`.*non-empty"),
        ({"candidates": ["a", "b", "a"]}, ValueError, "`candidates`.*distinct"),
        ({"k": 301}, ValueError, r"`k` \(301\) must not exceed the number of candidates \(300\)"),
        ({"k": 0}, ValueError, "`k` must be a positive integer"),
        ({"index": "annoy"}, ValueError, "`index` must be"),
        ({"candidate_embeddings": np.ones([299, DIM])}, ValueError, "Pass exactly one"),
        ({"scann_options": {"num_leaves": 4}}, ValueError, "only apply to index=.scann"),
        ({"index": "scann", "scann_options": {"leaves": 4}}, ValueError, "unknown keys"),
    ],
)
def test_bad_arguments(towers, tmp_path, kwargs, error, match):
    query, item = towers
    args = {"candidates": ITEMS, "candidate_tower": item, **kwargs}
    with pytest.raises(error, match=match):
        save_retrieval(query, path=tmp_path / "m", **args)
    assert not os.path.exists(tmp_path / "m") and not _leftovers(tmp_path)


def test_ids_and_embeddings_of_different_lengths(towers, tmp_path):
    with pytest.raises(ValueError, match="300 ids but there are 299 candidate embeddings"):
        save_retrieval(
            towers[0], ITEMS, tmp_path / "m", candidate_embeddings=np.ones([299, DIM]) * 0.1
        )


def test_identical_or_non_finite_embeddings(towers, tmp_path):
    rows = np.tile(np.arange(DIM, dtype=np.float32), [300, 1])
    with pytest.raises(ValueError, match="All 300 candidate embeddings are identical"):
        save_retrieval(towers[0], ITEMS, tmp_path / "m", candidate_embeddings=rows)
    rows = np.random.default_rng(0).normal(size=[300, DIM])
    rows[7, 3] = np.nan
    with pytest.raises(ValueError, match="1 candidate embeddings hold NaN.*row 7"):
        save_retrieval(towers[0], ITEMS, tmp_path / "m", candidate_embeddings=rows)


def test_untrained_towers(towers, tmp_path):
    fresh = tf.keras.layers.Embedding(301, DIM)
    with pytest.raises(ValueError, match="`candidate_tower` has never been called"):
        save_retrieval(towers[0], ITEMS, tmp_path / "m", candidate_tower=fresh)
    with pytest.raises(ValueError, match="`query_tower` has never been called"):
        save_retrieval(fresh, ITEMS, tmp_path / "m", candidate_tower=towers[1])
    zero = tf.keras.Sequential(
        [tf.keras.layers.StringLookup(vocabulary=ITEMS), tf.keras.layers.Embedding(301, DIM)]
    )
    zero(tf.constant(ITEMS[:1]))
    zero.layers[1].set_weights([np.zeros([301, DIM], np.float32)])
    with pytest.raises(ValueError, match="identical.*Train it first"):
        save_retrieval(towers[0], ITEMS, tmp_path / "m", candidate_tower=zero)


def test_query_dimension_must_match(towers, tmp_path):
    with pytest.raises(ValueError, match=r"\[batch, 4\] embeddings"):
        save_retrieval(towers[0], ITEMS, tmp_path / "m", candidate_embeddings=np.eye(300, 4) + 0.5)
    assert not os.path.exists(tmp_path / "m") and not _leftovers(tmp_path)


def test_existing_path_is_refused_then_replaced(towers, tmp_path):
    query, item = towers
    path = tmp_path / "m"
    path.mkdir()
    (path / "keep.txt").write_text("previous")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_retrieval(query, ITEMS, path, candidate_tower=item)
    assert (path / "keep.txt").read_text() == "previous"
    save_retrieval(query, ITEMS, path, candidate_tower=item, k=3, overwrite=True)
    assert not (path / "keep.txt").exists() and not _leftovers(tmp_path)
    assert load_retrieval(path).metadata["k"] == 3


def test_failed_write_leaves_nothing_and_keeps_the_previous_model(towers, tmp_path, monkeypatch):
    query, item = towers
    path = tmp_path / "m"
    save_retrieval(query, ITEMS, path, candidate_tower=item, k=4)

    def crash(module, export_dir, **kwargs):
        os.makedirs(os.path.join(export_dir, "variables"))  # half-written, then fails
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_retrieval(query, ITEMS, path, candidate_tower=item, k=5, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        save_retrieval(query, ITEMS, tmp_path / "new", candidate_tower=item)
    monkeypatch.undo()
    assert not _leftovers(tmp_path) and not (tmp_path / "new").exists()
    assert load_retrieval(path).metadata["k"] == 4


def test_input_signature_required_when_unknown(tmp_path):
    class Tower(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.Variable(
                np.random.default_rng(0).normal(size=[41, DIM]), dtype=tf.float32
            )

        def __call__(self, ids):
            return tf.gather(self.table, ids)

    item = tf.keras.layers.Embedding(300, DIM)
    item(tf.constant([0]))
    with pytest.raises(ValueError, match="`input_signature` is required"):
        save_retrieval(Tower(), np.arange(300), tmp_path / "m", candidate_tower=item)
    save_retrieval(
        Tower(),
        np.arange(300),
        tmp_path / "m",
        candidate_tower=item,
        input_signature=tf.TensorSpec([None], tf.int64),
    )
    got = load_retrieval(tmp_path / "m").signatures["serving_default"](
        query=tf.constant([3], tf.int64)
    )
    assert got["ids"].shape == (1, K) and got["ids"].dtype == tf.int64


def test_dataset_candidates(towers, tmp_path):
    query, item = towers
    users = tf.constant(USERS[:5])
    want = save_retrieval(query, ITEMS, tmp_path / "array", candidate_tower=item)
    want = load_retrieval(want).signatures["serving_default"](query=users)["ids"].numpy()
    batched_ids = tf.data.Dataset.from_tensor_slices(ITEMS).batch(64)
    pairs = batched_ids.map(lambda ids: (ids, item(ids)))
    for name, candidates, kwargs in [
        ("ids", batched_ids, {"candidate_tower": item}),
        ("pairs", pairs, {}),
    ]:
        save_retrieval(query, candidates, tmp_path / name, **kwargs)
        got = load_retrieval(tmp_path / name).signatures["serving_default"](query=users)
        np.testing.assert_array_equal(got["ids"].numpy(), want)
    with pytest.raises(ValueError, match="neither `candidate_tower` nor"):
        save_retrieval(query, pairs, tmp_path / "x", candidate_tower=item)
