"""`save_retrieval`: one call from a trained two-tower model to a servable SavedModel.

The SavedModel holds the query tower and a top-k index over the candidate embeddings
(`tfrs.layers.factorized_top_k.BruteForce`, or `ScaNN`); its `serving_default` signature
takes the query tower's raw features and returns the ids and scores of the best `k`
candidates.
"""

import contextlib
import os
from typing import Any, Dict, Iterator, NamedTuple, Optional, Tuple

from tfrs_negatives.export.atomic_write import write_atomically
from tfrs_negatives.export.scann_index import ScaNNIndex
from tfrs_negatives.negatives.catalogue import Catalogue
from tfrs_negatives.ops.ids import fingerprint64
from tfrs_negatives.scann_config import import_scann_ops
from tfrs_negatives.scann_config import scann_options as resolve_scann_options

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

QUERY_INPUT = "query"
EXCLUDE_INPUT = "exclude"
EMPTY_SCORE = float(np.finfo(np.float32).min)
EMPTY_STRING_ID = ""
EMPTY_INT_ID = -1


def save_retrieval(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
    query_tower: tf.keras.layers.Layer,
    candidates: Any,
    path: str,
    index: str = "exact",
    k: int = 10,
    candidate_tower: Optional[tf.keras.layers.Layer] = None,
    candidate_embeddings: Optional[Any] = None,
    exclude: bool = False,
    scann_options: Optional[Dict[str, Any]] = None,
    overwrite: bool = False,
    input_signature: Optional[Any] = None,
    batch_size: int = 4096,
) -> str:
    """Exports query tower + top-k index as a SavedModel serving the top-k candidate ids.

    Signature `serving_default`:
      inputs: the query tower's features — one input `"query"` when the tower takes a
        tensor, one input per key when it takes a dict — with the dtype and shape (batch
        dimension `None`) of its first call, or of `input_signature`; with
        `exclude=True` also `"exclude"`: `[B, E]` ids to leave out per query (string ids,
        or int64 for integer ids; pad rows with an id that is not a candidate, e.g. `""`),
        one row per query (other row counts fail with an `InvalidArgumentError` naming
        `exclude`, the rows expected and the rows received).
      outputs: `"ids"` `[B, k]` (string, or int64 for integer ids) and `"scores"` `[B, k]`
        float32 (dot products), best first. A slot with no candidate (exclusions left
        fewer than `k`, or ScaNN found fewer) holds id `""` / `-1` and score
        `EMPTY_SCORE` (the lowest float32).

    Exclusion fetches the best `min(k + E, N)` candidates, drops the excluded ones
    (compared as int64 fingerprints) and keeps the first `k`: exact for the exact index,
    whatever `E`. The SavedModel is written to a temporary directory beside `path` and
    renamed into place, so `path` never holds a half-written model.

    Checks (each a `ValueError` naming the argument unless said): `index` is `"exact"`
    or `"scann"`; `1 <= k <= N`; `path` does not exist unless `overwrite=True`
    (`FileExistsError`); candidates non-empty with distinct ids; exactly one of
    `candidate_tower` and `candidate_embeddings` (unless `candidates` is a dataset of
    `(ids, embeddings)`); embeddings `[N, D]` with one row per id, every value finite, and
    not all rows identical (a constant or collapsed tower); towers already called once
    (built); query-tower weights finite; query embeddings `[B, D]` with the candidates'
    `D`. A tower that was built but never trained cannot be told from a trained one.

    Args:
      query_tower: Keras layer/model from raw query features to `[B, D]` embeddings.
      candidates: A `Catalogue` (its features feed `candidate_tower`), `[N]` ids
        (strings or integers; they are also the tower's input), or a `tf.data.Dataset`
        of ids (batched or not) or of `(ids, embeddings)` pairs.
      path: Directory to write (its parent is created).
      index: `"exact"` (`BruteForce`: loads in stock TensorFlow Serving) or `"scann"`
        (ScaNN ops needed wherever it is loaded; see `load_retrieval`).
      k: Number of candidates returned per query.
      candidate_tower: Keras layer/model embedding the candidates' features.
      candidate_embeddings: `[N, D]` precomputed candidate embeddings, instead.
      exclude: Add the `"exclude"` input.
      scann_options: For `index="scann"`, any of `SCANN_OPTIONS`. Defaults for `N`
        candidates are the package's one ScaNN configuration
        (`tfrs_negatives.scann_config`, shared with `ScaNNMiner`):
        `num_leaves=round(sqrt(N))` from 2,000 candidates, else 0 (no tree),
        `num_leaves_to_search` a tenth of the leaves and at least enough to scan `40 k`
        candidates, `num_reordering_candidates=max(100, 2k)` (exact re-scoring; raised
        to `k + E` per query when excluding), `dimensions_per_block=1`,
        `anisotropic_quantization_threshold=0.2`, `training_iterations=12`,
        `training_sample_size=100_000`, `training_threads=0` (ScaNN's default). Below
        256 candidates ScaNN scores by brute force instead of asymmetric hashing.
      overwrite: Replace an existing `path`.
      input_signature: `tf.TensorSpec` or dict of them, when the query tower's input
        cannot be read from it (a layer or model never called on tensors).
      batch_size: Candidates embedded per call of `candidate_tower`.

    Returns:
      `path`.
    """
    if index not in ("exact", "scann"):
        raise ValueError(f'`index` must be "exact" or "scann", got {index!r}.')
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive integer, got {k!r}.")
    k = int(k)
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"`path` {path!r} already exists; pass overwrite=True to replace it.")
    if index == "exact" and scann_options:
        raise ValueError('`scann_options` only apply to index="scann".')
    _check_built(query_tower, "query_tower")
    _check_finite_weights(query_tower)
    signature, single = _input_signature(query_tower, input_signature, exclude)
    ids, embeddings = _candidate_embeddings(
        candidates, candidate_tower, candidate_embeddings, batch_size
    )
    n, dim = embeddings.shape
    if exclude:
        id_dtype = tf.string if ids.dtype == tf.string else tf.int64
        signature[EXCLUDE_INPUT] = tf.TensorSpec([None, None], id_dtype, name=EXCLUDE_INPUT)
    if k > n:
        raise ValueError(f"`k` ({k}) must not exceed the number of candidates ({n}).")
    options = {}
    if index == "scann":
        import_scann_ops()
        options = resolve_scann_options(n, k, scann_options)
    layer = _index_layer(index, k, options)
    layer.index(tf.constant(embeddings))
    layer(tf.zeros([1, dim], tf.float32), k=k)  # ScaNN must be called once before saving
    module = _RetrievalModule(query_tower, layer, ids, _Serving(k, dim, exclude, single))
    serve = tf.function(module.retrieve, input_signature=[signature], autograph=False)
    module.serve = serve
    concrete = serve.get_concrete_function()  # traces: checks the query tower's output
    metadata = {
        "format": "tfrs_negatives.export/1",
        "index": index,
        "k": k,
        "num_candidates": n,
        "dim": dim,
        "inputs": {
            name: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
            for name, spec in signature.items()
        },
        "query_input_is_dict": not single,
        "exclude": bool(exclude),
        "outputs": ["ids", "scores"],
        "id_dtype": module.candidate_ids.dtype.name,
        "empty_id": EMPTY_STRING_ID if module.candidate_ids.dtype == tf.string else EMPTY_INT_ID,
        "empty_score": EMPTY_SCORE,
        "scann_options": options,
        "requires_scann": index == "scann",
        "tensorflow": tf.__version__,
    }
    save_options = tf.saved_model.SaveOptions(
        namespace_whitelist=["Scann"] if index == "scann" else None
    )
    write_atomically(
        path,
        overwrite,
        lambda tmp: tf.saved_model.save(
            module, tmp, signatures={"serving_default": concrete}, options=save_options
        ),
        metadata,
    )
    return path


def _index_layer(index: str, k: int, options: Dict[str, Any]) -> tf.keras.layers.Layer:
    """The top-k layer over the candidates, float32 whatever the global Keras policy.

    Under `mixed_float16` a Keras layer casts its inputs and weights to float16: ScaNN's
    ops refuse half queries (`expected float ... half`) and `BruteForce` would score in
    float16. The layer is built under the float32 policy (restored after).
    """
    with _global_policy("float32"):
        if index == "scann":
            return ScaNNIndex(k=k, **options)
        return tfrs.layers.factorized_top_k.BruteForce(k=k)


@contextlib.contextmanager
def _global_policy(name: str) -> Iterator[None]:
    """Sets the global Keras dtype policy to `name` inside the block, then restores it."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


class _Serving(NamedTuple):
    """How the export serves: top `k`, embedding `dim`, an `exclude` input, one tensor input."""

    k: int
    dim: int
    exclude: bool
    single: bool


class _RetrievalModule(tf.Module):
    """What is saved: the query tower, the index, the candidate ids (and their keys)."""

    def __init__(self, query_tower, layer, ids, serving: _Serving):
        k, dim, exclude, single = serving
        super().__init__(name="retrieval")
        self.query_tower = query_tower
        self.index = layer
        ids = tf.convert_to_tensor(ids)
        if ids.dtype != tf.string:
            ids = tf.cast(ids, tf.int64)
        self.candidate_ids = tf.Variable(ids, trainable=False, name="candidate_ids")
        self.candidate_keys = None
        if exclude:
            self.candidate_keys = tf.Variable(_keys(ids), trainable=False, name="candidate_keys")
        self._k, self._dim, self._n, self._single = k, dim, int(ids.shape[0]), single

    def retrieve(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """`{"ids": [B, k], "scores": [B, k]}` for the raw query features in `inputs`."""
        inputs = dict(inputs)
        exclusions = inputs.pop(EXCLUDE_INPUT, None) if self.candidate_keys is not None else None
        features = inputs[QUERY_INPUT] if self._single else inputs
        queries = _call(self.query_tower, features)
        if queries.shape.rank != 2 or queries.shape[-1] not in (None, self._dim):
            raise ValueError(
                f"`query_tower` must map the query features to [batch, {self._dim}] embeddings "
                f"(the candidates' dimension), got shape {queries.shape}."
            )
        queries = tf.cast(queries, tf.float32)
        k, n = self._k, self._n
        fetch = k
        if exclusions is not None:
            exclusions = _one_row_per_query(exclusions, queries)
            fetch = tf.minimum(k + tf.shape(exclusions)[1], n)
        scores, positions = self.index(queries, k=fetch)
        positions = tf.cast(positions, tf.int64)
        valid = tf.math.is_finite(scores) & (positions >= 0) & (positions < n)
        positions = tf.clip_by_value(positions, 0, n - 1)
        if exclusions is not None:
            keys = tf.gather(self.candidate_keys, positions)  # [B, F]
            excluded = tf.reduce_any(
                tf.equal(keys[:, :, None], _keys(exclusions)[:, None, :]), axis=-1
            )
            valid &= ~excluded
        # ScaNN may return fewer than k columns: pad, then keep the best k valid ones.
        pad = tf.maximum(k - tf.shape(scores)[1], 0)
        masked = tf.pad(
            tf.where(valid, scores, EMPTY_SCORE), [[0, 0], [0, pad]], constant_values=EMPTY_SCORE
        )
        valid = tf.pad(valid, [[0, 0], [0, pad]], constant_values=False)
        positions = tf.pad(positions, [[0, 0], [0, pad]])
        best = tf.math.top_k(masked, k=k)
        kept = tf.gather(valid, best.indices, batch_dims=1)
        ids = tf.gather(self.candidate_ids, tf.gather(positions, best.indices, batch_dims=1))
        empty = EMPTY_STRING_ID if ids.dtype == tf.string else EMPTY_INT_ID
        return {
            "ids": tf.where(kept, ids, tf.constant(empty, ids.dtype)),
            "scores": tf.where(kept, best.values, EMPTY_SCORE),
        }


def _one_row_per_query(exclusions: tf.Tensor, queries: tf.Tensor) -> tf.Tensor:
    """`exclusions` `[B, E]`, checked (when served) to have the `B` rows of `queries` `[B, D]`.

    Raises:
      tf.errors.InvalidArgumentError: (when served) another number of rows, named.
    """
    rows, expected = tf.shape(exclusions)[0], tf.shape(queries)[0]
    message = tf.strings.format(
        "`exclude` must have one row of ids per query: expected {} rows (the queries), "
        "got {} rows.",
        (expected, rows),
    )
    check = tf.debugging.Assert(tf.equal(rows, expected), [message])
    with tf.control_dependencies([check]):
        return tf.identity(exclusions)


def _call(tower: Any, features: Any) -> tf.Tensor:
    """The tower in inference mode (`training=False` for Keras layers)."""
    if isinstance(tower, tf.keras.layers.Layer):
        return tower(features, training=False)
    return tower(features)


def _keys(ids: tf.Tensor) -> tf.Tensor:
    """int64 keys of ids of any shape: integers cast, strings fingerprinted."""
    ids = tf.convert_to_tensor(ids)
    if ids.dtype == tf.string:
        return tf.reshape(fingerprint64(tf.reshape(ids, [-1])), tf.shape(ids))
    return tf.cast(ids, tf.int64)


def _check_built(tower: Any, name: str) -> None:
    if not isinstance(tower, tf.Module) or not callable(tower):
        raise TypeError(f"`{name}` must be a Keras layer or model, got {type(tower).__name__}.")
    if isinstance(tower, tf.keras.layers.Layer) and not tower.built:
        raise ValueError(
            f"`{name}` has never been called, so its weights do not exist: export a trained "
            "tower (or call it once on a batch of features first)."
        )


def _check_finite_weights(tower: Any) -> None:
    for weight in getattr(tower, "weights", None) or tower.variables:
        if weight.dtype.is_floating and not np.all(np.isfinite(weight.numpy())):
            raise ValueError(
                f"`query_tower` weight {weight.name!r} holds NaN or infinite values "
                "(training diverged?)."
            )


def _input_signature(tower: Any, given: Any, exclude: bool) -> Tuple[Dict[str, Any], bool]:
    """`({input name: TensorSpec}, whether the tower takes one tensor)`."""
    spec = given
    if spec is None and isinstance(tower, tf.keras.Model):
        try:
            args, kwargs = tower.save_spec(dynamic_batch=True) or ((), {})
        except (AttributeError, TypeError, ValueError):
            args, kwargs = (), {}
        spec = args[0] if len(args) == 1 and not kwargs else None
    if spec is None:
        spec = getattr(tower, "_saved_model_inputs_spec", None)
    if spec is None:
        raise ValueError(
            "`input_signature` is required: the query tower's input could not be read from "
            "it (call it once on a batch of query features, or pass e.g. "
            "input_signature=tf.TensorSpec([None], tf.string) or a dict of TensorSpecs)."
        )

    def relax(s: Any, name: str) -> tf.TensorSpec:
        if not isinstance(s, tf.TensorSpec) or s.shape.rank in (None, 0):
            raise ValueError(
                "`input_signature` must be a tf.TensorSpec with a batch dimension or a flat "
                f"dict of them; got {s!r} for {name!r}."
            )
        return tf.TensorSpec([None, *s.shape.as_list()[1:]], s.dtype, name=name)

    if isinstance(spec, dict):
        signature = {str(key): relax(s, str(key)) for key, s in spec.items()}
        single = False
    else:
        signature, single = {QUERY_INPUT: relax(spec, QUERY_INPUT)}, True
    if exclude:
        if EXCLUDE_INPUT in signature:
            raise ValueError(
                f"A query feature is named {EXCLUDE_INPUT!r}, the name of the exclusion input "
                "that exclude=True adds; rename the feature."
            )
        signature[EXCLUDE_INPUT] = None  # filled in once the id dtype is known
    return signature, single


def _candidate_embeddings(candidates, tower, embeddings, batch_size) -> Tuple[Any, np.ndarray]:
    """`(ids [N], embeddings [N, D] float32)`, checked."""
    if isinstance(candidates, tf.data.Dataset) and isinstance(candidates.element_spec, tuple):
        if tower is not None or embeddings is not None:
            raise ValueError(
                "`candidates` yields (ids, embeddings) pairs: pass neither `candidate_tower` "
                "nor `candidate_embeddings`."
            )
        if len(candidates.element_spec) != 2:
            raise ValueError(
                "`candidates` must yield ids or (ids, embeddings) pairs, got element spec "
                f"{candidates.element_spec}."
            )
        pairs = list(candidates.as_numpy_iterator())
        if not pairs:
            raise ValueError("`candidates` is empty: there is nothing to retrieve.")
        ids = np.concatenate([np.reshape(i, [-1]) for i, _ in pairs])
        embeddings = np.concatenate([np.reshape(e, [-1, np.shape(e)[-1]]) for _, e in pairs])
        catalogue = _catalogue(ids)
    else:
        catalogue = _catalogue(candidates)
        if (tower is None) == (embeddings is None):
            raise ValueError(
                "Pass exactly one of `candidate_tower` (the trained candidate tower, to embed "
                "the catalogue) and `candidate_embeddings` ([N, D] precomputed), got "
                f"{'both' if tower is not None else 'neither'}."
            )
        if tower is not None:
            _check_built(tower, "candidate_tower")
            embeddings = _embed(tower, catalogue.features, batch_size)
    embeddings = np.asarray(embeddings)
    name = "candidate embeddings"
    if embeddings.ndim != 2 or embeddings.shape[1] == 0:
        raise ValueError(f"The {name} must be [N, D], got shape {embeddings.shape}.")
    if not np.issubdtype(embeddings.dtype, np.floating):
        raise ValueError(f"The {name} must be floating point, got dtype {embeddings.dtype}.")
    embeddings = embeddings.astype(np.float32)
    if embeddings.shape[0] != catalogue.size:
        raise ValueError(
            f"`candidates` has {catalogue.size} ids but there are {embeddings.shape[0]} "
            f"{name}: they must have the same length."
        )
    bad = ~np.isfinite(embeddings).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} {name} hold NaN or infinite values (first at row "
            f"{int(np.argmax(bad))}): the candidate tower diverged or is broken."
        )
    if catalogue.size > 1 and (embeddings == embeddings[0]).all():
        raise ValueError(
            f"All {catalogue.size} {name} are identical: the candidate tower ignores its "
            "input (untrained, collapsed, or fed a constant feature). Train it first."
        )
    return catalogue.raw_ids, embeddings


def _catalogue(candidates: Any) -> Catalogue:
    if isinstance(candidates, Catalogue):
        return candidates
    try:
        if isinstance(candidates, tf.data.Dataset):
            spec = candidates.element_spec
            if isinstance(spec, tf.TensorSpec) and spec.shape.rank == 1:
                candidates = candidates.unbatch()
            return Catalogue.from_dataset(candidates)
        return Catalogue(candidates)
    except ValueError as err:
        raise ValueError(
            f"`candidates`: {err} (for a dataset of feature dicts build "
            "Catalogue.from_dataset(ds, id_key=...))."
        ) from err


def _embed(tower: Any, features: Any, batch_size: int) -> np.ndarray:
    @tf.function(reduce_retracing=True)
    def embed(batch):
        return tf.cast(_call(tower, batch), tf.float32)

    batches = tf.data.Dataset.from_tensor_slices(features).batch(int(batch_size))
    return np.concatenate([embed(batch).numpy() for batch in batches])
