"""The one ScaNN configuration of the package: defaults for `N` points and `k` neighbours,
and the builder calls that apply them.

Used by the hard-negative miner's search (`tfrs_negatives.mining.ScaNNSearch`, ScaNN's
Python searcher) and by ScaNN exports (`tfrs_negatives.export.save_retrieval`, ScaNN's
TensorFlow ops); both builders take the same calls. Defaults (Guo et al. 2020, "Accelerating
large-scale inference with anisotropic vector quantization", ICML):

* `num_leaves`: tree partitions, `round(sqrt(N))` from `TREE_MIN_POINTS` points, else 0
  (no tree: every point is scored);
* `num_leaves_to_search`: a tenth of the leaves, and at least enough leaves to scan
  `SEARCHED_POINTS_PER_NEIGHBOUR * k` points (measured on clustered 64-d catalogues: a
  tenth alone recalls 0.92 of the exact `[100, 500)` window at 10^5 items, k = 500);
* anisotropic hashing with `dimensions_per_block=1` (window recall 0.96 against 0.90 with
  2 at 10^6 items, k = 500, for ~30% of speed), threshold 0.2; below
  `HASHING_MIN_POINTS` points, exact (brute-force) scoring instead;
* `num_reordering_candidates`: `max(2k, 100)` candidates re-scored exactly;
* `training_iterations=12`, `training_sample_size=100_000`, `training_threads=0`
  (ScaNN's default thread count).

ScaNN itself is imported lazily, by `import_scann` only (the miners' Python searcher, or
the exports' TensorFlow ops), with an error naming the install command when it is missing.
"""

import math
from typing import Any, Dict, Mapping, Optional

SCANN_INSTALL = 'pip install "scann[tf]==1.4.2"  (or: pip install "tfrs_negatives[scann]")'
"""The command that installs the ScaNN this package is built against."""


def import_scann(part: str = "search") -> Any:
    """Imports a part of ScaNN, or fails with the command that installs it.

    Args:
      part: `"search"`: ScaNN's Python searcher (`scann.scann_ops.py.scann_ops_pybind`,
        used by `ScaNNMiner` / `ScaNNSearch`); `"ops"`: its TensorFlow ops
        (`scann.scann_ops.py.scann_ops`, registered in this process; ScaNN exports need
        them to be built, saved and loaded).

    Returns:
      The imported module.

    Raises:
      ImportError: ScaNN is missing (or, for `"ops"`, its ops were built for another
        TensorFlow); the message names `SCANN_INSTALL`.
      ValueError: `part` is neither `"search"` nor `"ops"`.
    """
    if part == "search":
        try:
            from scann.scann_ops.py import scann_ops_pybind  # noqa: PLC0415
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"ScaNN is not installed (needed by ScaNNMiner / a ScaNN index): {err}. "
                f"Install it with: {SCANN_INSTALL}"
            ) from err
        return scann_ops_pybind
    if part == "ops":
        import tensorflow as tf  # noqa: PLC0415

        try:
            from scann.scann_ops.py import scann_ops  # noqa: PLC0415
        except (ImportError, OSError, tf.errors.NotFoundError) as err:
            raise ImportError(
                f"ScaNN's TensorFlow ops could not be loaded ({type(err).__name__}: {err}). A "
                f"ScaNN index needs them to be built, saved and loaded. Install them with: "
                f"{SCANN_INSTALL}. scann 1.4.2's ops are built for TensorFlow 2.20 exactly; "
                f"this is TensorFlow {tf.__version__}."
            ) from err
        return scann_ops
    raise ValueError(f"`part` must be 'search' or 'ops', got {part!r}.")


def import_scann_ops() -> Any:
    """`import_scann("ops")`: registers ScaNN's TensorFlow ops, or fails naming the install."""
    return import_scann("ops")


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
"""Keys of a ScaNN configuration (`scann_options` of exports, `ScaNNSearch` arguments)."""

TREE_MIN_POINTS = 2000
HASHING_MIN_POINTS = 256
SEARCHED_POINTS_PER_NEIGHBOUR = 40
MIN_REORDER = 100


def default_leaves(n: int) -> int:
    """Tree partitions for `n` points: `round(sqrt(n))` from `TREE_MIN_POINTS`, else 0."""
    return int(round(math.sqrt(n))) if n >= TREE_MIN_POINTS else 0


def default_leaves_to_search(leaves: int, n: int, k: int) -> int:
    """A tenth of `leaves`, and enough to scan `SEARCHED_POINTS_PER_NEIGHBOUR * k` points."""
    if leaves < 2:
        return 0
    enough = -(-SEARCHED_POINTS_PER_NEIGHBOUR * k * leaves // n)  # ceil(40 k / points per leaf)
    return min(leaves, max(1, leaves // 10, enough))


def reorder_candidates(k: int, n: int, given: Optional[int] = None) -> int:
    """Candidates re-scored exactly for `k` neighbours: `given` or `max(2k, 100)`, at most `n`."""
    return min(n, int(given) if given else max(2 * k, MIN_REORDER))


def scann_options(n: int, k: int, given: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The full configuration for `n` points searched for `k` neighbours.

    Args:
      n: Number of points indexed (>= 1).
      k: Neighbours asked for (the depth the defaults are sized for).
      given: Options to use instead of the defaults (keys of `SCANN_OPTIONS`; None
        values mean the default).

    Returns:
      Dict with every key of `SCANN_OPTIONS`, clipped to the data (leaves <= `n`,
      leaves searched <= leaves, re-scored <= `n`).

    Raises:
      ValueError: an unknown key, or a value out of range (named).
    """
    given = {key: value for key, value in dict(given or {}).items() if value is not None}
    unknown = sorted(set(given) - set(SCANN_OPTIONS))
    if unknown:
        raise ValueError(
            f"`scann_options` has unknown keys {unknown}; known: {list(SCANN_OPTIONS)}."
        )
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"`scann_options[{key!r}]` must be a number, got {value!r}.")
    leaves = int(given.get("num_leaves", default_leaves(n)))
    if leaves < 0:
        raise ValueError(f"`scann_options['num_leaves']` must be >= 0, got {leaves}.")
    leaves = min(leaves, n)
    options = {
        "num_leaves": leaves,
        "num_leaves_to_search": default_leaves_to_search(leaves, n, k),
        "num_reordering_candidates": reorder_candidates(k, n),
        "dimensions_per_block": 1,
        "anisotropic_quantization_threshold": 0.2,
        "training_iterations": 12,
        "training_sample_size": 100_000,
        "training_threads": 0,
    }
    options.update({key: value for key, value in given.items() if key != "num_leaves"})
    for key in ("num_leaves_to_search", "num_reordering_candidates", "dimensions_per_block"):
        options[key] = int(options[key])
    if leaves >= 2 and options["num_leaves_to_search"] < 1:
        raise ValueError(
            "`scann_options['num_leaves_to_search']` must be >= 1, got "
            f"{options['num_leaves_to_search']}."
        )
    options["num_leaves_to_search"] = min(options["num_leaves_to_search"], leaves)
    for key in ("num_reordering_candidates", "dimensions_per_block"):
        if options[key] < 1:
            raise ValueError(f"`scann_options[{key!r}]` must be >= 1, got {options[key]}.")
    options["num_reordering_candidates"] = min(options["num_reordering_candidates"], n)
    for key in ("training_iterations", "training_sample_size"):
        if int(options[key]) < 1:
            raise ValueError(f"`scann_options[{key!r}]` must be >= 1, got {options[key]}.")
    if int(options["training_threads"]) < 0:
        raise ValueError(
            f"`scann_options['training_threads']` must be >= 0, got {options['training_threads']}."
        )
    return options


def configure_builder(builder: Any, options: Mapping[str, Any], n: int) -> Any:
    """Applies `options` (from `scann_options`) to a ScaNN builder of `n` points.

    Works with the builder of ScaNN's Python searcher (`scann_ops_pybind.builder`) and
    of its TensorFlow ops (`scann_ops.builder`): tree partitioning when `num_leaves >= 2`,
    anisotropic hashing then exact re-scoring from `HASHING_MIN_POINTS` points, else
    exact scoring of every point searched.

    Returns:
      The configured builder (call `.build()` on it).
    """
    if options["training_threads"]:
        builder = builder.set_n_training_threads(int(options["training_threads"]))
    sample = min(int(options["training_sample_size"]), n)
    if options["num_leaves"] >= 2:
        builder = builder.tree(
            num_leaves=int(options["num_leaves"]),
            num_leaves_to_search=int(options["num_leaves_to_search"]),
            training_sample_size=sample,
            training_iterations=int(options["training_iterations"]),
        )
    if n < HASHING_MIN_POINTS:
        return builder.score_brute_force()
    builder = builder.score_ah(
        int(options["dimensions_per_block"]),
        anisotropic_quantization_threshold=float(options["anisotropic_quantization_threshold"]),
        training_sample_size=sample,
    )
    return builder.reorder(int(options["num_reordering_candidates"]))
