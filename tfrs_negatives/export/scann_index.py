"""The ScaNN index of an export: TFRS's ScaNN layer with the knobs it does not expose."""

import math
from typing import Any, Dict, Optional, Tuple

from tfrs_negatives.export.loading import import_scann_ops

import tensorflow as tf
import tensorflow_recommenders as tfrs

SCANN_OPTIONS = (
    "num_leaves",
    "num_leaves_to_search",
    "num_reordering_candidates",
    "dimensions_per_block",
    "anisotropic_quantization_threshold",
    "training_iterations",
    "training_sample_size",
    "training_threads",
)


class ScaNNIndex(tfrs.layers.factorized_top_k.ScaNN):
    """TFRS's ScaNN layer with the knobs it does not expose, and the re-scoring depth
    raised to the number of candidates asked for (exclusion over-fetches)."""

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
        o = self._options
        n = int(candidates.shape[0])
        builder = scann_ops.builder(candidates, self._k, "dot_product")
        builder = builder.set_n_training_threads(o["training_threads"])
        if o["num_leaves"] >= 2:
            builder = builder.tree(
                num_leaves=o["num_leaves"],
                num_leaves_to_search=o["num_leaves_to_search"],
                training_sample_size=min(o["training_sample_size"], n),
                training_iterations=o["training_iterations"],
            )
        if n >= 256:
            builder = builder.score_ah(
                o["dimensions_per_block"],
                anisotropic_quantization_threshold=o["anisotropic_quantization_threshold"],
                training_sample_size=min(o["training_sample_size"], n),
            )
            builder = builder.reorder(o["num_reordering_candidates"])
        else:
            builder = builder.score_brute_force()
        return builder.build(shared_name=f"{self.name}/{id(self)}")

    def call(self, queries: tf.Tensor, k: Optional[Any] = None) -> Tuple[tf.Tensor, tf.Tensor]:
        k = self._k if k is None else k
        scann_ops = import_scann_ops()
        searcher = scann_ops.searcher_from_module(self._serialized_searcher)
        result = searcher.search_batched_parallel(
            queries,
            final_num_neighbors=k,
            pre_reorder_num_neighbors=tf.maximum(self._options["num_reordering_candidates"], k),
        )
        return result.distances, result.indices


def scann_defaults(given: Dict[str, Any], n: int, k: int) -> Dict[str, Any]:
    unknown = sorted(set(given) - set(SCANN_OPTIONS))
    if unknown:
        raise ValueError(
            f"`scann_options` has unknown keys {unknown}; known: {list(SCANN_OPTIONS)}."
        )
    leaves = given.get("num_leaves")
    leaves = int(round(math.sqrt(n)) if n >= 2000 else 0) if leaves is None else int(leaves)
    leaves = min(leaves, n)
    options = {
        "num_leaves": leaves,
        "num_leaves_to_search": max(math.ceil(leaves / 10), min(leaves, 10)),
        "num_reordering_candidates": max(100, 2 * k),
        "dimensions_per_block": 2,
        "anisotropic_quantization_threshold": 0.2,
        "training_iterations": 12,
        "training_sample_size": 100_000,
        "training_threads": 0,
    }
    options.update({key: value for key, value in given.items() if value is not None})
    options["num_leaves"] = leaves
    options["num_leaves_to_search"] = min(int(options["num_leaves_to_search"]), leaves)
    options["num_reordering_candidates"] = min(int(options["num_reordering_candidates"]), n)
    if leaves < 0:
        raise ValueError(f"`scann_options['num_leaves']` must be >= 0, got {leaves}.")
    keys = ("num_leaves_to_search",) if leaves >= 2 else ()
    for key in (*keys, "num_reordering_candidates"):
        if options[key] < 1:
            raise ValueError(f"`scann_options[{key!r}]` must be >= 1, got {options[key]}.")
    return options
