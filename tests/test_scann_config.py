"""The one ScaNN configuration: hand-worked defaults, checks, and both users applying it."""

import re
import sys

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow)
from tfrs_negatives.export import SCANN_OPTIONS, save_retrieval
from tfrs_negatives.export.loading import read_metadata
from tfrs_negatives.mining import ScaNNSearch
from tfrs_negatives.scann_config import (
    SCANN_INSTALL,
    configure_builder,
    import_scann,
    import_scann_ops,
    reorder_candidates,
    scann_options,
)

import numpy as np
import pytest
import tensorflow as tf


def test_defaults_hand_worked():
    # N = 10^5, k = 10: leaves round(sqrt(1e5)) = 316; a tenth is 31 leaves; 40 k = 400
    # points at 316.5 points per leaf needs ceil(400 * 316 / 1e5) = 2 leaves -> 31.
    options = scann_options(100_000, 10)
    assert set(options) == set(SCANN_OPTIONS)
    assert options["num_leaves"] == 316
    assert options["num_leaves_to_search"] == 31
    assert options["num_reordering_candidates"] == 100  # max(2k, 100)
    assert options["dimensions_per_block"] == 1
    # N = 10^5, k = 500 (a mining window): 40 k = 20,000 points needs
    # ceil(20000 * 316 / 1e5) = 64 leaves, more than the tenth.
    mining = scann_options(100_000, 500)
    assert mining["num_leaves_to_search"] == 64
    assert mining["num_reordering_candidates"] == 1000
    # Below 2,000 points: no tree; re-scoring capped by the points.
    small = scann_options(150, 100)
    assert small["num_leaves"] == 0 and small["num_leaves_to_search"] == 0
    assert small["num_reordering_candidates"] == 150
    assert reorder_candidates(3, 1000) == 100 and reorder_candidates(3, 1000, given=7) == 7


def test_given_options_override_and_are_clipped():
    options = scann_options(
        5000, 10, {"num_leaves": 50, "num_leaves_to_search": 80, "dimensions_per_block": 2}
    )
    assert options["num_leaves"] == 50 and options["num_leaves_to_search"] == 50
    assert options["dimensions_per_block"] == 2
    assert scann_options(5000, 10, {"num_leaves": None})["num_leaves"] == 71  # None: default


@pytest.mark.parametrize(
    "given, match",
    [
        ({"leaves": 3}, "unknown keys"),
        ({"num_leaves": -1}, "num_leaves"),
        ({"num_leaves": 10, "num_leaves_to_search": 0}, "num_leaves_to_search"),
        ({"num_reordering_candidates": 0}, "num_reordering_candidates"),
        ({"dimensions_per_block": "1"}, "must be a number"),
    ],
)
def test_bad_options_name_the_key(given, match):
    with pytest.raises(ValueError, match=match):
        scann_options(5000, 10, given)


class _RecordingBuilder:
    """Stands in for a ScaNN builder: records the calls."""

    def __init__(self) -> None:
        self.calls = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self

        return call


def test_builder_calls():
    options = scann_options(10_000, 10, {"training_threads": 2})
    calls = configure_builder(_RecordingBuilder(), options, 10_000).calls
    assert [c[0] for c in calls] == ["set_n_training_threads", "tree", "score_ah", "reorder"]
    assert calls[1][2]["num_leaves"] == 100 and calls[1][2]["num_leaves_to_search"] == 10
    assert calls[2][1] == (1,) and calls[3][1] == (100,)
    tiny = configure_builder(_RecordingBuilder(), scann_options(100, 10), 100).calls
    assert [c[0] for c in tiny] == ["score_brute_force"]


def test_miner_search_and_export_use_the_same_configuration(tmp_path):
    pytest.importorskip("scann")
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((3000, 8)).astype(np.float32)
    search = ScaNNSearch().build(embeddings, k=10)
    assert search.options == scann_options(3000, 10)
    query = tf.keras.layers.Embedding(5, 8)
    query(tf.constant([0], tf.int64))
    path = save_retrieval(
        query, np.arange(3000), str(tmp_path / "m"), index="scann", candidate_embeddings=embeddings
    )
    assert read_metadata(path)["scann_options"] == scann_options(3000, 10)


def _without_scann(monkeypatch):
    monkeypatch.setitem(sys.modules, "scann", None)
    monkeypatch.setitem(sys.modules, "scann.scann_ops.py", None)


def test_import_scann_without_scann_names_the_install_command(monkeypatch):
    _without_scann(monkeypatch)
    with pytest.raises(ImportError, match=re.escape(f"Install it with: {SCANN_INSTALL}")):
        import_scann()


def test_import_scann_ops_without_scann_names_the_install_and_tensorflow(monkeypatch):
    _without_scann(monkeypatch)
    with pytest.raises(ImportError) as raised:
        import_scann("ops")
    message = str(raised.value)
    assert f"Install them with: {SCANN_INSTALL}." in message
    assert f"this is TensorFlow {tf.__version__}." in message


def test_import_scann_of_an_unknown_part_names_the_choices():
    with pytest.raises(
        ValueError, match=re.escape("`part` must be 'search' or 'ops', got 'faiss'.")
    ):
        import_scann("faiss")


def test_mining_and_export_import_scann_through_the_one_helper():
    from tfrs_negatives.export import loading, retrieval, scann_index  # noqa: PLC0415
    from tfrs_negatives.mining import search  # noqa: PLC0415

    assert search.import_scann is import_scann
    assert loading.import_scann_ops is retrieval.import_scann_ops is import_scann_ops
    assert scann_index.import_scann_ops is import_scann_ops
    assert not hasattr(loading, "SCANN_INSTALL") and not hasattr(search, "SCANN_INSTALL")
