"""The ScaNN index of an export: TFRS's ScaNN layer with the knobs it does not expose."""

from typing import Any, Optional, Tuple

from tfrs_negatives._native_logs import quiet_native_logs
from tfrs_negatives.scann_config import configure_builder, import_scann_ops

import tensorflow as tf
import tensorflow_recommenders as tfrs


class ScaNNIndex(tfrs.layers.factorized_top_k.ScaNN):
    """TFRS's ScaNN layer with the knobs it does not expose, and the re-scoring depth
    raised to the number of candidates asked for (exclusion over-fetches).

    Args:
      k: Neighbours returned by default.
      **options: Every key of `tfrs_negatives.scann_config.SCANN_OPTIONS`, as
        `scann_options(n, k)` resolves them; the builder is `configure_builder`'s,
        the same as the hard-negative miner's.
    """

    def __init__(self, k, **options):
        self._options = dict(options)
        super().__init__(
            k=k,
            num_leaves=max(options["num_leaves"], 1),
            num_leaves_to_search=max(options["num_leaves_to_search"], 1),
            training_iterations=options["training_iterations"],
            dimensions_per_block=options["dimensions_per_block"],
            num_reordering_candidates=options["num_reordering_candidates"],
        )
        self._build_searcher = self._builder

    def _builder(self, candidates: tf.Tensor):
        scann_ops = import_scann_ops()
        n = int(candidates.shape[0])
        candidates = tf.cast(candidates, tf.float32)  # ScaNN's ops take float32 only
        builder = scann_ops.builder(candidates, self._k, "dot_product")
        builder = configure_builder(builder, self._options, n)
        with quiet_native_logs():  # ScaNN's absl INFO lines ("Single-machine AH training...")
            return builder.build(shared_name=f"{self.name}/{id(self)}")

    def call(self, queries: tf.Tensor, k: Optional[Any] = None) -> Tuple[tf.Tensor, tf.Tensor]:
        k = self._k if k is None else k
        scann_ops = import_scann_ops()
        searcher = scann_ops.searcher_from_module(self._serialized_searcher)
        result = searcher.search_batched_parallel(
            tf.cast(queries, tf.float32),  # float16 under a mixed policy: ScaNN takes float32
            final_num_neighbors=k,
            pre_reorder_num_neighbors=tf.maximum(self._options["num_reordering_candidates"], k),
        )
        return result.distances, result.indices
