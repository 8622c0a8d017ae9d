"""One catalogue shard's index, built once, saved beside the output and loaded by the searchers.

A shard directory holds `embeddings.npy` (`[N, D]` float32), `ids.pkl` (the `[N]` ids)
and, for `kind="scann"`, ScaNN's own serialization (`scann/`, written by
`ScannSearcher.serialize`, read by `scann_ops_pybind.load_searcher`), so a worker that
searches the shard loads the index instead of training it again.

Paths go through Beam's `FileSystems`: a shard directory may be local or on `gs://`;
ScaNN reads and writes local files, so its files are copied through a local temporary
directory.
"""

import io
import os
import pickle
import tempfile
from typing import List, NamedTuple, Optional, Sequence

from tfrs_negatives.beam.records import Id
from tfrs_negatives.beam.window import Neighbours, compact_ids, ranked, shard_top
from tfrs_negatives.scann_config import (
    configure_builder,
    import_scann,
    reorder_candidates,
    scann_options,
)

import numpy as np
from apache_beam.io.filesystems import FileSystems

INDEXES = ("exact", "scann")
SCANN_DIR = "scann"


class ShardInfo(NamedTuple):
    """Where a built shard lives and what it holds."""

    directory: str
    size: int
    dim: int


def _write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as handle:
        handle.write(data)


def _read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _scann_searcher(embeddings: np.ndarray, depth: int):
    """A ScaNN searcher of `embeddings` sized for `depth` neighbours (the package defaults)."""
    scann = import_scann()
    n = embeddings.shape[0]
    options = scann_options(n, min(depth, n))
    builder = scann.builder(embeddings, min(depth, n), "dot_product")
    return configure_builder(builder, options, n).build()


def save_shard(
    directory: str, embeddings: np.ndarray, ids: Sequence[Id], kind: str, depth: int
) -> ShardInfo:
    """Builds and writes one shard's index.

    Args:
      directory: The shard's directory (created).
      embeddings: `[N, D]` the shard's item embeddings (N >= 1).
      ids: `[N]` their ids.
      kind: `"exact"` or `"scann"`.
      depth: Neighbours a search asks for (what ScaNN's defaults are sized for).

    Returns:
      The shard's `ShardInfo`.
    """
    if kind not in INDEXES:
        raise ValueError(f"`index` must be one of {INDEXES}, got {kind!r}.")
    embeddings = np.ascontiguousarray(embeddings, np.float32)
    FileSystems.mkdirs(directory)
    _write_bytes(FileSystems.join(directory, "embeddings.npy"), _npy_bytes(embeddings))
    _write_bytes(FileSystems.join(directory, "ids.pkl"), pickle.dumps(list(ids)))
    if kind == "scann":
        searcher = _scann_searcher(embeddings, depth)
        with tempfile.TemporaryDirectory() as local:
            searcher.serialize(local, relative_path=True)  # movable: paths relative
            target = FileSystems.join(directory, SCANN_DIR)
            FileSystems.mkdirs(target)
            for name in sorted(os.listdir(local)):
                with open(os.path.join(local, name), "rb") as handle:
                    _write_bytes(FileSystems.join(target, name), handle.read())
    return ShardInfo(directory, len(ids), embeddings.shape[1])


class ShardIndex:
    """A loaded shard: each anchor's best items, scored exactly in float64, ties by id.

    Args:
      directory: A directory `save_shard` wrote.
      kind: The index it holds.
    """

    def __init__(self, directory: str, kind: str) -> None:
        self.embeddings = np.load(
            io.BytesIO(_read_bytes(FileSystems.join(directory, "embeddings.npy")))
        )
        self.ids: List[Id] = pickle.loads(_read_bytes(FileSystems.join(directory, "ids.pkl")))
        self.kind = kind
        self._searcher: Optional[object] = self._load_scann(directory) if kind == "scann" else None

    @staticmethod
    def _load_scann(directory: str):
        source = FileSystems.join(directory, SCANN_DIR)
        files = FileSystems.match([FileSystems.join(source, "*")])[0].metadata_list
        with tempfile.TemporaryDirectory() as local:
            for meta in files:
                name = meta.path.rstrip("/").rsplit("/", 1)[-1]
                with open(os.path.join(local, name), "wb") as handle:
                    handle.write(_read_bytes(meta.path))
            return import_scann().load_searcher(local)

    def top(self, anchors: np.ndarray, ks: Sequence[int]) -> List[Neighbours]:
        """Each anchor's `ks[a]` best items of the shard (`[A, D]` anchors), best first."""
        if self._searcher is None:
            return shard_top(anchors, self.embeddings, self.ids, ks)
        n = len(self.ids)
        depth = min(max(int(k) for k in ks), n)
        rows, _ = self._searcher.search_batched(
            np.ascontiguousarray(anchors, np.float32),
            final_num_neighbors=depth,
            pre_reorder_num_neighbors=max(depth, reorder_candidates(depth, n)),
        )
        return [
            self._rescored(anchor, np.asarray(found, np.int64), k)
            for anchor, found, k in zip(anchors, rows, ks)
        ]

    def _rescored(self, anchor: np.ndarray, found: np.ndarray, k: int) -> Neighbours:
        """ScaNN's candidates re-scored in float64 and ranked as the exact index ranks."""
        scores = self.embeddings[found].astype(np.float64) @ anchor.astype(np.float64)
        ids = [self.ids[i] for i in found]
        order = ranked(scores, ids)[: min(int(k), len(ids))]
        return Neighbours(scores[order], compact_ids([ids[i] for i in order]))
