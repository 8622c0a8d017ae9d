"""Miners against exact references; the table, known positives and refresh."""

import sys

import tfrs_negatives as tfn
from tfrs_negatives.mining import (
    BruteForceMiner,
    HardNegativeTable,
    KnownPositives,
    ScaNNMiner,
    ScaNNSearch,
)

import numpy as np
import pytest
import tensorflow as tf


def _table(n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, d))
    return (centres[rng.integers(0, 12, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def _tower(table):
    return lambda ids: tf.gather(table, ids)


def _reference_window(table, anchors, window, anchor_rows=None, excluded=None):
    """Ranks `[lo, hi) = window` of each anchor's exact neighbours, dropped rows skipped."""
    lo, hi = window
    out = []
    scores = anchors @ table.T
    for a, row in enumerate(scores):
        order = np.argsort(-row, kind="stable")
        drop = set()
        if anchor_rows is not None:
            drop.add(anchor_rows[a])
        if excluded is not None:
            drop |= set(excluded[a].tolist())
        admissible = [i for i in order if i not in drop]
        out.append(admissible[lo:hi])
    return out


def test_brute_force_item_side_window_matches_reference():
    table = _table()
    miner = BruteForceMiner(np.arange(len(table)), min_rank=3, max_rank=20, batch_size=64)
    embeddings = miner.index(_tower(table))
    np.testing.assert_allclose(embeddings, table)
    rows = np.arange(50)
    neighbours, counts = miner.mine(table[rows], anchor_rows=rows)
    expected = _reference_window(table, table[rows], (3, 20), anchor_rows=rows)
    assert (counts == 17).all()
    for got, want in zip(neighbours, expected):
        assert got.tolist() == want


def test_brute_force_query_side_excludes_known_positives():
    table = _table(seed=1)
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(6, 16)).astype(np.float32)
    miner = BruteForceMiner(np.arange(len(table)), min_rank=0, max_rank=10)
    miner.index(_tower(table))
    top = np.argsort(-(queries @ table.T), axis=1)
    excluded = [top[a, : a + 1] for a in range(6)]  # drop the a+1 best of query a
    neighbours, counts = miner.mine(queries, excluded=excluded)
    expected = _reference_window(table, queries, (0, 10), excluded=excluded)
    assert [n.tolist() for n in neighbours] == expected
    assert (counts == 10).all()


def test_window_is_padded_when_the_catalogue_runs_out():
    table = _table(n=12)
    miner = BruteForceMiner(np.arange(12), min_rank=5, max_rank=12)
    miner.index(_tower(table))
    neighbours, counts = miner.mine(table[:2], anchor_rows=np.arange(2))
    # 11 admissible items (anchor dropped): ranks 5..10 exist, rank 11 does not.
    assert counts.tolist() == [6, 6]
    assert (neighbours[:, 6] == -1).all() and (neighbours[:, :6] >= 0).all()


def test_scann_recalls_the_exact_window():
    table = _table(n=5000, d=16, seed=2)
    anchors = np.arange(200)
    exact = BruteForceMiner(np.arange(5000), min_rank=10, max_rank=60)
    exact.index(_tower(table))
    want, _ = exact.mine(table[anchors], anchor_rows=anchors)
    approx = ScaNNMiner(np.arange(5000), min_rank=10, max_rank=60, leaves_to_search=20)
    approx.index(_tower(table))
    got, counts = approx.mine(table[anchors], anchor_rows=anchors)
    recall = np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)])
    assert recall >= 0.95
    assert (counts == 50).all()


def test_scann_missing_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "scann", None)
    monkeypatch.setitem(sys.modules, "scann.scann_ops.py", None)
    with pytest.raises(ImportError, match=r'pip install "scann\[tf\]==1.4.2"'):
        ScaNNSearch().build(np.zeros([10, 4], np.float32))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: BruteForceMiner(np.arange(10), min_rank=0, max_rank=11), "beyond the catalogue"),
        (lambda: BruteForceMiner(np.arange(10), min_rank=5, max_rank=5), "min_rank"),
        (lambda: BruteForceMiner([], min_rank=0, max_rank=1), "empty"),
        (lambda: HardNegativeTable([1, 2], 0), "`window`"),
        (
            lambda: tfn.negatives.Mined(HardNegativeTable([1, 2], 3), [1, 2], count=4),
            r"`count` \(4\).*window \(3",
        ),
        (
            lambda: tfn.negatives.Mined(HardNegativeTable([1, 2], 3), [1, 2], 1, side="user"),
            "`side`",
        ),
        (
            lambda: tfn.negatives.Mined(HardNegativeTable([1, 2], 3), [1, 2], 1, margin=1.5),
            "`margin`",
        ),
    ],
)
def test_bad_input(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_mine_checks_dimensions_and_order():
    miner = BruteForceMiner(np.arange(20), min_rank=0, max_rank=5)
    with pytest.raises(RuntimeError, match="index"):
        miner.mine(np.zeros([2, 4]))
    miner.index(_tower(_table(n=20, d=4)))
    with pytest.raises(ValueError, match=r"`anchor_embeddings`.*\[A, 4\]"):
        miner.mine(np.zeros([2, 3]))


def test_table_assign_checkpoint_and_errors(tmp_path):
    table = HardNegativeTable(["a", "b"], 3)
    table.assign([[1, 2, -1], [0, -1, -1]], [2, 1])
    path = tf.train.Checkpoint(t=table).save(str(tmp_path / "c"))
    other = HardNegativeTable(["a", "b"], 3)
    tf.train.Checkpoint(t=other).restore(path).assert_consumed()
    np.testing.assert_array_equal(other.neighbours.numpy(), [[1, 2, -1], [0, -1, -1]])
    assert int(other.refreshes.numpy()) == 1
    with pytest.raises(ValueError, match="shape"):
        table.assign(np.zeros([2, 4]), [0, 0])
    with pytest.raises(ValueError, match="`counts`"):
        table.assign(np.zeros([2, 3]), [4, 0])
    clone = HardNegativeTable.from_config(table.get_config())
    assert clone.get_config() == table.get_config()


def test_known_positives():
    known = KnownPositives(tf.constant(["u1", "u1", "u2"]), tf.constant([5, 7, 5]))
    q = tfn.ops.to_int64_ids(tf.constant(["u1", "u2", "u3"]))
    got = known.contains(q[:, None], tf.constant([[5, 7], [5, 7], [5, 7]], tf.int64))
    np.testing.assert_array_equal(got.numpy(), [[True, True], [True, False], [False, False]])
    # Small integer ids never collide: all 100 x 100 pairs distinct.
    grid = tfn.mining.pair_keys(
        tf.range(100, dtype=tf.int64)[:, None], tf.range(100, dtype=tf.int64)[None, :]
    )
    assert len(np.unique(grid.numpy())) == 10_000
    again = KnownPositives(**known.get_config())
    np.testing.assert_array_equal(
        again.contains(q[:, None], tf.constant([[5]], tf.int64)).numpy(), [[True], [True], [False]]
    )


def test_progress_bar_reports_indexing_and_mining(capsys):
    table = _table(n=100, d=4)
    miner = BruteForceMiner(np.arange(100), min_rank=0, max_rank=5, batch_size=40, progress=True)
    miner.index(_tower(table))
    miner.mine(table[:50], anchor_rows=np.arange(50))
    out = capsys.readouterr().out
    assert "indexing" in out and "100/100" in out and "mining" in out and "50/50" in out


@pytest.mark.parametrize("width", [3, 100])  # both paths: per-column compare, sorted keys
def test_excluded_rows_of_any_width_match_reference(width):
    table = _table(seed=3)
    rng = np.random.default_rng(3)
    queries = rng.normal(size=(5, 16)).astype(np.float32)
    top = np.argsort(-(queries @ table.T), axis=1)
    excluded = [
        np.concatenate([top[a, : width // 2], rng.choice(300, width - width // 2)])
        for a in range(5)
    ]
    excluded[1] = np.zeros([0], np.int64)  # an anchor with nothing to exclude
    miner = BruteForceMiner(np.arange(len(table)), min_rank=0, max_rank=10)
    miner.index(_tower(table))
    neighbours, _ = miner.mine(queries, excluded=excluded)
    expected = _reference_window(table, queries, (0, 10), excluded=excluded)
    assert [n.tolist() for n in neighbours] == expected


def test_known_positives_of_lists_of_different_lengths():
    with pytest.raises(
        ValueError,
        match=r"`query_ids` and `item_ids` must have the same length .* got 3 query ids and 2 "
        r"item ids",
    ):
        KnownPositives(["u1", "u1", "u2"], [5, 7])


def test_known_positives_remember_the_kinds_of_their_ids():
    known = KnownPositives(tf.constant(["u1", "u2"]), tf.constant([5, 7]))
    assert (known.query_id_kind, known.item_id_kind) == ("string", "int")
    again = KnownPositives(**known.get_config())
    assert (again.query_id_kind, again.item_id_kind) == ("string", "int")
    again.check_ids(tf.constant(["u3"]), tf.constant([5], tf.int64))
    with pytest.raises(TypeError, match="`query_ids` are ints but the KnownPositives"):
        again.check_ids(query_ids=tf.constant([1]))
    with pytest.raises(TypeError, match="`item_ids` are strings but the KnownPositives"):
        again.check_ids(item_ids=tf.constant(["5"]))


def test_table_rejects_anchor_ids_of_the_other_kind():
    table = HardNegativeTable(["u1", "u2"], 3)
    with pytest.raises(TypeError, match="`anchor_ids` are ints but the anchors of HardNegative"):
        table(tf.constant([1, 2]))


def test_negatives_do_not_import_mining():
    """negatives/ holds what the Mined source reads; mining/ may import it, not the reverse."""
    import ast  # noqa: PLC0415
    import pathlib  # noqa: PLC0415

    folder = pathlib.Path(tfn.negatives.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            assert not [n for n in names if n.startswith("tfrs_negatives.mining")], path.name
    # The public names stay where the README puts them, as the same classes.
    assert tfn.mining.HardNegativeTable is tfn.negatives.HardNegativeTable
    assert tfn.mining.KnownPositives is tfn.negatives.KnownPositives
    from tfrs_negatives.mining import table  # noqa: PLC0415

    assert table.HardNegativeTable is HardNegativeTable and table.pair_keys is tfn.mining.pair_keys
    registered = tf.keras.utils.get_registered_name(HardNegativeTable)
    assert registered == "tfrs_negatives>HardNegativeTable"  # saved configs still load
