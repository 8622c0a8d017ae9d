"""Recall@k and head/tail split against hand-worked examples."""

from tfrs_negatives.evaluation import head_items, recall_at_k, seen_items, true_item_ranks

import numpy as np
import pytest


def test_head_items_hand_worked():
    # Counts: item0 5, item1 3, item2 1, item3 1 (total 10). Half = 5 -> head = {0}.
    train = np.array([0] * 5 + [1] * 3 + [2, 3])
    np.testing.assert_array_equal(head_items(train, 5), [True, False, False, False, False])
    # 0.6 of 10 = 6 needs items 0 and 1.
    np.testing.assert_array_equal(head_items(train, 4, share=0.6), [True, True, False, False])
    with pytest.raises(ValueError, match="`share`"):
        head_items(train, 4, share=1.0)


def test_recall_at_k_hand_worked():
    items = np.array([[3.0], [2.0], [1.0], [-1.0]])  # scores = query * item
    queries = np.array([[1.0], [1.0], [-1.0]])
    # Query 0, true item 1: one item (0) scores higher -> rank 1.
    # Query 1, true item 3: rank 3.  Query 2 (negated scores), true item 3: rank 0.
    result = recall_at_k(
        queries, items, np.array([1, 3, 3]), ks=(1, 2, 4), head=np.array([True, True, False, False])
    )
    assert result["recall@1"] == pytest.approx(1 / 3)
    assert result["recall@2"] == pytest.approx(2 / 3)
    assert result["recall@4"] == 1.0
    assert result["head_recall@1"] == 0.0 and result["head_recall@2"] == 1.0
    assert result["tail_recall@1"] == 0.5
    assert result["n_head"] == 1.0
    with pytest.raises(ValueError, match="`ks`"):
        recall_at_k(queries, items, np.array([1, 3, 3]), ks=(5,))


def test_recall_matches_brute_force_sort():
    rng = np.random.default_rng(0)
    q, it = rng.normal(size=(50, 4)), rng.normal(size=(30, 4))
    true = rng.integers(0, 30, 50)
    result = recall_at_k(q, it, true, ks=(5,), batch_size=7)
    top5 = np.argsort(-(q @ it.T), axis=1)[:, :5]
    assert result["recall@5"] == pytest.approx(np.mean([t in row for t, row in zip(true, top5)]))


def test_excluded_items_leave_the_ranking_but_the_true_item_stays():
    rng = np.random.default_rng(3)
    queries, items = rng.normal(size=(40, 4)), rng.normal(size=(25, 4))
    true = rng.integers(0, 25, 40)
    excluded = [rng.choice(25, size=rng.integers(0, 10), replace=False) for _ in range(40)]
    excluded[0] = np.append(excluded[0], true[0])  # listing the true item changes nothing
    scores = queries @ items.T
    expected = []
    for row in range(40):
        kept = np.setdiff1d(np.arange(25), np.setdiff1d(excluded[row], [true[row]]))
        expected.append(int((scores[row, kept] > scores[row, true[row]]).sum()))
    ranks = true_item_ranks(queries, items, true, batch_size=16, excluded=excluded)
    np.testing.assert_array_equal(ranks, expected)
    assert (ranks <= true_item_ranks(queries, items, true)).all()
    got = recall_at_k(queries, items, true, ks=(1, 5), excluded=excluded)
    assert got["recall@5"] == pytest.approx(np.mean(np.array(expected) < 5))
    with pytest.raises(ValueError, match="one array per interaction"):
        true_item_ranks(queries, items, true, excluded=excluded[:3])


def test_seen_items_per_query():
    seen = seen_items(
        np.array([b"a", b"c", b"b", b"a"]),
        np.array([b"a", b"b", b"a", b"a", b"b"]),
        np.array([3, 1, 0, 3, 4]),
    )
    assert [s.tolist() for s in seen] == [[0, 3], [], [1, 4], [0, 3]]
