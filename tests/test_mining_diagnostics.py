"""False-negative rate by rank bucket and impression tables, against hand-worked examples."""

import tfrs_negatives as tfn
from tfrs_negatives.mining import (
    HardNegativeTable,
    KnownPositives,
    false_negative_rate_by_rank,
    impression_table,
)
from tfrs_negatives.negatives import Catalogue

import numpy as np
import pytest
import tensorflow as tf


def test_false_negative_rate_hand_worked():
    catalogue = Catalogue(np.array([10, 11, 12, 13, 14]))
    table = HardNegativeTable(catalogue, 3)  # item-side, window ranks [2, 5)
    # Anchor 10 -> rows [1, 2, 3] = items 11, 12, 13; anchor 11 -> items 14, 10 (count 2).
    table.assign([[1, 2, 3], [4, 0, -1], [-1] * 3, [-1] * 3, [-1] * 3], [3, 2, 0, 0, 0])
    # Examples (user, positive): (u1, 10), (u2, 10), (u1, 11).
    held_out = KnownPositives(["u1", "u2", "u1"], [12, 11, 10])
    result = false_negative_rate_by_rank(
        table,
        catalogue,
        anchor_ids=[10, 10, 11],
        query_ids=["u1", "u2", "u1"],
        held_out=held_out,
        min_rank=2,
        bucket_edges=[2, 3, 5],
    )
    # Rank 2 (slot 0): u1/10 -> 11 no; u2/10 -> 11 yes; u1/11 -> 14 no   => 1 of 3.
    # Ranks 3-4 (slots 1-2): u1/10 -> 12 yes, 13 no; u2/10 -> 12, 13 no; u1/11 -> 10 yes
    #   => 2 of 5.
    assert [(r["mined"], r["false_negatives"]) for r in result] == [(3, 1), (5, 2)]
    assert result[0]["rate"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="`bucket_edges`"):
        false_negative_rate_by_rank(table, catalogue, [10], ["u1"], held_out, 2, [3, 3])


def test_impression_table_hand_worked():
    catalogue = Catalogue(np.array(["a", "b", "c", "d"]))
    table = impression_table(
        query_ids=["q1", "q1", "q1", "q1", "q2", "q2", "q1"],
        item_ids=["a", "b", "c", "b", "d", "zz", "d"],
        engaged=[False, False, True, False, False, False, False],
        scores=[0.1, 0.9, 0.5, 0.8, 0.3, 0.7, 0.95],
        catalogue=catalogue,
        window=2,
    )
    # q1: not engaged a(0.1), b(0.9, 0.8), d(0.95); c engaged -> by score d, b, a -> window 2.
    # q2: d (zz is not in the catalogue).
    anchors = sorted(x.decode() for x in table.anchors.raw_ids.numpy())
    assert anchors == ["q1", "q2"]
    rows, found = table.rows(tfn.ops.to_int64_ids(tf.constant(["q1", "q2"])))
    assert found.numpy().all()
    np.testing.assert_array_equal(table.neighbours.numpy()[rows.numpy()], [[3, 1], [3, -1]])
    np.testing.assert_array_equal(table.counts.numpy()[rows.numpy()], [2, 1])
    with pytest.raises(ValueError, match="empty"):
        impression_table([], [], [], catalogue, 2)
    with pytest.raises(ValueError, match="one entry per impression"):
        impression_table(["q"], ["a", "b"], [True], catalogue, 2)
