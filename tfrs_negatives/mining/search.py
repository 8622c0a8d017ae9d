"""Nearest-neighbour search over candidate embeddings: exact (the reference) and ScaNN."""

from typing import Any, Dict, Optional, Tuple

from tfrs_negatives._native_logs import quiet_native_logs
from tfrs_negatives.scann_config import (
    configure_builder,
    import_scann,
    reorder_candidates,
    scann_options,
)

import numpy as np
import tensorflow as tf


class ExactSearch:
    """Exact dot-product top-k by batched matrix products (the reference for ScaNN).

    Args:
      batch_size: Queries scored at a time.
    """

    def __init__(self, batch_size: int = 1024) -> None:
        self.batch_size = int(batch_size)
        self._database: Optional[tf.Tensor] = None

    def build(self, embeddings: np.ndarray) -> "ExactSearch":
        """Indexes `[N, D]` embeddings."""
        self._database = tf.constant(np.asarray(embeddings, np.float32))
        return self

    @property
    def size(self) -> int:
        return 0 if self._database is None else int(self._database.shape[0])

    def search(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """`(indices [A, k] int64, scores [A, k] float32)`, best first."""
        if self._database is None:
            raise RuntimeError("Call build(embeddings) before search.")
        queries = np.asarray(queries, np.float32)
        indices, scores = [], []
        for start in range(0, len(queries), self.batch_size):
            top = _exact_top_k(
                tf.constant(queries[start : start + self.batch_size]), self._database, k
            )
            scores.append(top.values.numpy())
            indices.append(top.indices.numpy().astype(np.int64))
        if not indices:
            return np.zeros([0, k], np.int64), np.zeros([0, k], np.float32)
        return np.concatenate(indices), np.concatenate(scores)


@tf.function(reduce_retracing=True)
def _exact_top_k(queries: tf.Tensor, database: tf.Tensor, k: int):
    return tf.math.top_k(tf.linalg.matmul(queries, database, transpose_b=True), k)


class ScaNNSearch:
    """ScaNN (Guo et al. 2020) dot-product search: tree partitioning, anisotropic hashing,
    exact re-scoring of the best `reorder` candidates.

    The configuration is the package's one (`tfrs_negatives.scann_config`, shared with
    ScaNN exports); None arguments take its defaults for the `N` points and `k` of `build`.

    Args:
      num_leaves: Partitions; default `round(sqrt(N))` (no tree below 2,000 items).
      leaves_to_search: Partitions searched per query; default a tenth of them, and
        at least enough to scan about `40 k` points.
      reorder: Candidates re-scored exactly; default `max(2k, 100)` at search time.
      dimensions_per_block: Asymmetric-hashing block size (1: finer quantization).
      anisotropic_quantization_threshold: As in ScaNN.
      training_sample_size: Points used to train the tree and the quantizer.
      threads: Threads for building (0: ScaNN's default).
    """

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        num_leaves: Optional[int] = None,
        leaves_to_search: Optional[int] = None,
        reorder: Optional[int] = None,
        dimensions_per_block: int = 1,
        anisotropic_quantization_threshold: float = 0.2,
        training_sample_size: int = 100_000,
        threads: int = 0,
    ) -> None:
        self.num_leaves = num_leaves
        self.leaves_to_search = leaves_to_search
        self.reorder = reorder
        self.dimensions_per_block = int(dimensions_per_block)
        self.anisotropic_quantization_threshold = float(anisotropic_quantization_threshold)
        self.training_sample_size = int(training_sample_size)
        self.threads = int(threads)
        self._searcher = None
        self._size = 0
        self._built_k = 0
        self.options: Dict[str, Any] = {}  # the configuration of the last build

    @property
    def size(self) -> int:
        return self._size

    def build(self, embeddings: np.ndarray, k: int = 100) -> "ScaNNSearch":
        """Indexes `[N, D]` embeddings for searches of up to about `k` neighbours."""
        scann = import_scann()
        database = np.ascontiguousarray(embeddings, np.float32)
        n = database.shape[0]
        k = min(int(k), n)
        self.options = scann_options(
            n,
            k,
            {
                "num_leaves": self.num_leaves,
                "num_leaves_to_search": self.leaves_to_search,
                "num_reordering_candidates": self.reorder,
                "dimensions_per_block": self.dimensions_per_block,
                "anisotropic_quantization_threshold": self.anisotropic_quantization_threshold,
                "training_sample_size": self.training_sample_size,
                "training_threads": self.threads,
            },
        )
        builder = scann.builder(database, k, "dot_product")
        with quiet_native_logs():  # ScaNN's absl INFO lines ("Single-machine AH training...")
            self._searcher = configure_builder(builder, self.options, n).build()
        self._size = n
        self._built_k = k
        return self

    def search(self, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
        """`(indices [A, k] int64, scores [A, k] float32)`, best first."""
        if self._searcher is None:
            raise RuntimeError("Call build(embeddings) before search.")
        k = min(int(k), self._size)
        reorder = max(k, reorder_candidates(k, self._size, self.reorder))
        indices, scores = self._searcher.search_batched_parallel(
            np.ascontiguousarray(queries, np.float32),
            final_num_neighbors=k,
            pre_reorder_num_neighbors=reorder,
        )
        return np.asarray(indices, np.int64), np.asarray(scores, np.float32)
