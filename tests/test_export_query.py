"""`python -m tfrs_negatives.export.query`: printed top-k against NumPy, and its errors.

Two tiny exact exports (module fixture): integer user ids -> string titles holding
spaces and commas (k = 5), and string user ids -> integer item ids with an exclusion
input (k = 4). The command runs in fresh processes (all at once) for the printed
results; bad input is checked in this process through `main` (argparse exits with 2)
and once in a subprocess (no traceback).
"""

import json
import os
import re
import subprocess
import sys

from tfrs_negatives.export import save_retrieval
from tfrs_negatives.export.query import main

import numpy as np
import pytest
import tensorflow as tf

DIM = 6
TITLES = np.array([f"Movie {i}, The ({1950 + i})" for i in range(40)])
ITEM_IDS = np.arange(1000, 1030, dtype=np.int64)
USERS = np.array([f"user{i}" for i in range(20)])


def _table(rng, rows):
    return rng.normal(size=(rows, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("query_cli")
    rng = np.random.default_rng(7)
    # Integer user ids (an Embedding over ids 0..49) -> titles.
    int_tower = tf.keras.layers.Embedding(50, DIM)
    int_tower(tf.constant([0], tf.int64))
    int_tower.set_weights([_table(rng, 50)])
    title_embeddings = _table(rng, len(TITLES))
    save_retrieval(
        int_tower, TITLES, str(root / "titles"), k=5, candidate_embeddings=title_embeddings
    )
    # String user ids -> integer item ids, with exclusion.
    lookup = tf.keras.layers.StringLookup(vocabulary=USERS)
    embedding = tf.keras.layers.Embedding(len(USERS) + 1, DIM)
    str_tower = tf.keras.Sequential([lookup, embedding])
    str_tower(tf.constant(USERS[:2]))
    embedding.set_weights([_table(rng, len(USERS) + 1)])
    item_embeddings = _table(rng, len(ITEM_IDS))
    save_retrieval(
        str_tower,
        ITEM_IDS,
        str(root / "items"),
        k=4,
        candidate_embeddings=item_embeddings,
        exclude=True,
    )
    return {
        "root": root,
        "title_scores": int_tower.get_weights()[0].astype(np.float64) @ title_embeddings.T,
        "item_scores": embedding.get_weights()[0].astype(np.float64) @ item_embeddings.T,
    }


def _command(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, "-m", "tfrs_negatives.export.query", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture(scope="module")
def runs(exports):
    root = exports["root"]
    procs = {
        "table": _command(root / "titles", "--queries", "1,42,7", "--k", "3"),
        "json_exclude": _command(
            root / "items",
            "--queries",
            "user3,user11",
            "--exclude",
            "1004|1017",
            "--exclude",
            "",
            "--json",
        ),
        "missing": _command(root / "nowhere", "--queries", "1"),
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        out[name] = (proc.returncode, stdout, stderr)
    return out


def _top(scores, k, exclude=()):
    order = [j for j in np.argsort(-scores, kind="stable") if j not in exclude]
    return order[:k]


def test_printed_table_is_the_numpy_top_k(exports, runs):
    code, stdout, stderr = runs["table"]
    assert code == 0, stderr[-2000:]
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("#") and "exact index" in lines[0]
    assert lines[1].split() == ["query", "rank", "score", "id"]
    rows = [line.split(maxsplit=3) for line in lines[2:]]  # ids (titles) hold spaces
    scores = exports["title_scores"]
    want = []
    for user in (1, 42, 7):
        for rank, j in enumerate(_top(scores[user], 3), start=1):
            want.append([str(user), str(rank), TITLES[j]])
    assert [[q, r, title] for q, r, _, title in rows] == want
    printed = np.array([float(s) for _, _, s, _ in rows]).reshape(3, 3)
    expected = np.sort(scores[[1, 42, 7]], axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(printed, expected, atol=1e-4)


def test_json_output_with_exclusion_per_query(exports, runs):
    code, stdout, stderr = runs["json_exclude"]
    assert code == 0, stderr[-2000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["queries"] == ["user3", "user11"]
    # StringLookup maps user{i} to row i + 1 (row 0 is the OOV token).
    scores = exports["item_scores"]
    excluded = {int(np.flatnonzero(ITEM_IDS == i)[0]) for i in (1004, 1017)}
    want = [
        [int(ITEM_IDS[j]) for j in _top(scores[3 + 1], 4, excluded)],
        [int(ITEM_IDS[j]) for j in _top(scores[11 + 1], 4)],
    ]
    assert result["ids"] == want


def test_missing_path_fails_cleanly_in_a_new_process(runs):
    code, stdout, stderr = runs["missing"]
    assert code == 2 and stdout == ""
    assert "SavedModel directory" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize(
    "model, args, message",
    [
        ("titles", ["--queries", "1,x"], "takes int64 values"),
        ("items", ["--queries", "3"], None),  # string ids: any text is a valid id
        ("titles", ["--queries", "1", "--k", "6"], "exceeds the k the model was exported with"),
        ("titles", ["--queries", "1", "--exclude", "a"], "without exclude=True"),
        (
            "items",
            ["--queries", "user1,user2", "--exclude", "1", "--exclude", "2", "--exclude", "3"],
            "once per query",
        ),
        ("items", ["--queries", "user1", "--exclude", "x"], "takes int64 values"),
        ("titles", ["--feature", "age=3"], "NAME=v1,v2"),
        ("titles", [], "give the queries"),
    ],
)
def test_bad_input_exits_with_status_2(exports, capsys, model, args, message):
    path = str(exports["root"] / model)
    if message is None:
        assert main([path, *args]) == 0
        return
    with pytest.raises(SystemExit) as exit_info:
        main([path, *args])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
