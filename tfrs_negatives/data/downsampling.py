"""Down-sampling of head items in training data: word2vec's frequent-word sub-sampling.

In a retrieval training stream a few popular items hold most of the examples. Mikolov
et al. 2013 ("Distributed Representations of Words and Phrases and their
Compositionality", NeurIPS) discard frequent words while training word2vec; the
released word2vec code keeps an occurrence of a word whose share of the corpus is `z`
with probability

    p_keep(z) = min(1, (sqrt(z / a) + 1) * a / z) = min(1, sqrt(a / z) + a / z)

for a threshold `a` (`sample`, 1e-3 by default there). Recommendation practice applies
the same formula to the positives of a recall model, damping head items before
training (e.g. the "负样本为王" post, https://zhuanlan.zhihu.com/p/165064102). Here `z`
is an item's per-example frequency, the share of training examples whose item it is,
the same quantity the estimators of `tfrs_negatives.estimators` return.

Items with `z <= a * (3 + sqrt(5)) / 2` (about `2.618 a`) are always kept; an item
with `z = 4a` keeps 3/4 of its examples; for `z >> a` the kept share falls like
`sqrt(a / z)`, so the kept count of an item grows like `sqrt(n_item)`.
"""

import math
import numbers
from typing import Any, Callable, Optional, Sequence, Tuple, Union

from tfrs_negatives.estimators.base import SamplingProbabilityEstimator
from tfrs_negatives.estimators.tables import ExactFrequencyEstimator
from tfrs_negatives.ops.ids import to_int64_ids

import numpy as np
import tensorflow as tf

FrequencyLike = Union[SamplingProbabilityEstimator, Tuple[Any, Any]]

_ID_DTYPES = (tf.int32, tf.int64, tf.string)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Philox (the stateless ops' default algorithm) makes four float32 uniforms per
# 128-bit counter value: float `4c + j` of the stream has counter `c`, word `j`.
_PHILOX, _FLOATS_PER_COUNTER = 1, 4


def keep_probability(
    z: Union[tf.Tensor, np.ndarray, Sequence[float], float], sample: float = 1e-3
) -> tf.Tensor:
    """word2vec's keep probability `min(1, (sqrt(z / a) + 1) * a / z)` with `a = sample`.

    Computed as `sqrt(a / z) + a / z`, equal and finite for every `z > 0`. A pure
    element-wise op: NumPy arrays and Python numbers are accepted.

    Args:
      z: Tensor (any shape) of per-example frequencies in `(0, 1]`: the share of
        training examples whose item is the example's item. Float tensors keep
        their dtype; other inputs are computed in float32. `z = 0` gives 1,
        negative or NaN `z` give NaN.
      sample: The threshold `a`, a finite number > 0. Items with `z` up to about
        `2.618 * sample` are always kept.

    Returns:
      Tensor of `z`'s shape: keep probabilities in `(0, 1]`.

    Raises:
      TypeError: `sample` is not a number.
      ValueError: `sample` is not finite and > 0.
    """
    sample = _check_sample(sample)
    z = tf.convert_to_tensor(z)
    if not z.dtype.is_floating:
        z = tf.cast(z, tf.float32)
    ratio = tf.constant(sample, z.dtype) / z
    return tf.minimum(tf.sqrt(ratio) + ratio, tf.ones([], z.dtype))


def downsample_positives(
    dataset: tf.data.Dataset,
    id_fn: Callable[..., tf.Tensor],
    frequency: FrequencyLike,
    sample: float = 1e-3,
    seed: Optional[int] = None,
) -> tf.data.Dataset:
    """Keeps each example with word2vec's probability `keep_probability(z, sample)`.

    `z` is the per-example frequency of the example's item, read from `frequency`
    (without updating it). Head items lose most of their examples, items with
    `z <= 2.618 * sample` keep all of theirs.

    Unbatched datasets (one example per element; `id_fn` returns a scalar) are
    filtered element by element. Batched datasets (`id_fn` returns `[n]`, one id
    per example of the batch) keep their batch structure: every component of a
    batch (a `tf.Tensor` or `tf.RaggedTensor` whose first dimension is the batch)
    is masked with the same boolean mask, so batches shrink to a variable size,
    and batches left empty are dropped. Down-sample before `batch` if you want
    full batches.

    The random draws are keyed by `seed` and by the example's position in the
    dataset (its index, counting the examples of every batch), using the stateless
    Philox generator: with the same `seed`, every iteration keeps the same
    examples, and batching the dataset before or after down-sampling keeps the
    same examples. With `seed=None` a new seed is drawn for every iteration
    (epoch), like `shuffle(reshuffle_each_iteration=True)`; it follows
    `tf.random.set_seed` if a global seed is set.

    Example:
      ```python
      counts = ExactFrequencyEstimator.from_dataset(train.map(lambda x: x["movie_id"]))
      train = downsample_positives(
          train, lambda x: x["movie_id"], counts, sample=1e-3, seed=7
      )
      ```

    Args:
      dataset: `tf.data.Dataset` of training examples, unbatched or batched.
      id_fn: Maps an element to its item id: a scalar (unbatched) or `[n]`
        (batched) int32, int64 or string tensor. It is called like a
        `Dataset.map` function: tuple elements are passed as positional
        arguments.
      frequency: Where `z` comes from: a `SamplingProbabilityEstimator` (e.g.
        `ExactFrequencyEstimator`; its `probability` is read, its state is not
        updated, and a learning estimator is read in its state at the time each
        element is produced), or an `(ids, counts)` pair of item ids and their
        training-example counts (`z = count / sum(counts)`; ids absent from
        `ids` count as seen once).
      sample: The word2vec threshold `a`: a finite number > 0. Smaller values
        damp the head harder.
      seed: Python int (int64 range) making the result deterministic, or None.

    Returns:
      A `tf.data.Dataset` with the same element structure (batched components
      get an unknown first dimension) and the kept examples in their order.

    Raises:
      TypeError: `dataset` is not a `tf.data.Dataset`, `id_fn` is not callable
        or does not return a single int32/int64/string tensor, `frequency` is
        neither an estimator nor an `(ids, counts)` pair, or `sample` or `seed`
        is not a number/int.
      ValueError: `sample` is not finite and > 0, `seed` is outside the int64
        range, `id_fn` returns a tensor of rank > 1 or of unknown rank, or a
        batched element has a scalar component.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"`dataset` must be a tf.data.Dataset, got {type(dataset).__name__}.")
    if not callable(id_fn):
        raise TypeError(
            "`id_fn` must be a callable mapping a dataset element to its item id (e.g. "
            f"`lambda x: x['movie_id']`), got {type(id_fn).__name__}."
        )
    sample = _check_sample(sample)
    seed = _check_seed(seed)
    estimator = _as_estimator(frequency)
    batched = _check_id_fn(dataset, id_fn)

    def build(seed_tensor: tf.Tensor) -> tf.data.Dataset:
        key = _philox_key(seed_tensor)
        if batched:
            return _downsample_batches(dataset, id_fn, estimator, sample, key)
        return _downsample_examples(dataset, id_fn, estimator, sample, key)

    if seed is not None:
        return build(tf.constant(seed, tf.int64))
    seeds = tf.data.Dataset.random(rerandomize_each_iteration=True).take(1)
    return seeds.flat_map(build)


def _downsample_examples(
    dataset: tf.data.Dataset,
    id_fn: Callable[..., tf.Tensor],
    estimator: SamplingProbabilityEstimator,
    sample: float,
    key: tf.Tensor,
) -> tf.data.Dataset:
    def decide(position: tf.Tensor, element: Any) -> Tuple[tf.Tensor, Any]:
        ids = tf.reshape(_call(id_fn, element), [1])
        p = keep_probability(estimator.probability(to_int64_ids(ids, "id_fn")), sample)
        u = _uniforms(key, position, tf.constant(1, tf.int64))
        return tf.reshape(u < tf.cast(p, tf.float32), []), element

    return (
        dataset.enumerate()
        .map(decide, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .filter(lambda kept, element: kept)
        .map(lambda kept, element: element)
    )


def _downsample_batches(
    dataset: tf.data.Dataset,
    id_fn: Callable[..., tf.Tensor],
    estimator: SamplingProbabilityEstimator,
    sample: float,
    key: tf.Tensor,
) -> tf.data.Dataset:
    def count(offset: tf.Tensor, element: Any) -> Tuple[tf.Tensor, Any]:
        n = tf.size(_call(id_fn, element), out_type=tf.int64)
        return offset + n, (offset, element)

    def mask(offset: tf.Tensor, element: Any) -> Any:
        ids = _call(id_fn, element)
        n = tf.size(ids, out_type=tf.int64)
        p = keep_probability(estimator.probability(to_int64_ids(ids, "id_fn")), sample)
        kept = _uniforms(key, offset, n) < tf.cast(p, tf.float32)
        return tf.nest.map_structure(lambda t: _mask_batch(t, kept, n), element)

    def non_empty(element: Any) -> tf.Tensor:
        return tf.size(_call(id_fn, element)) > 0

    return (
        dataset.scan(tf.constant(0, tf.int64), count)
        .map(mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .filter(non_empty)
    )


def _mask_batch(component: Any, kept: tf.Tensor, n: tf.Tensor) -> Any:
    if isinstance(component, tf.RaggedTensor):
        return tf.ragged.boolean_mask(component, kept)
    if not isinstance(component, tf.Tensor):
        raise TypeError(
            "`dataset`: a batched element's components must be tf.Tensor or "
            f"tf.RaggedTensor with the batch as first dimension, got "
            f"{type(component).__name__}."
        )
    if component.shape.rank == 0:
        raise ValueError(
            "`dataset`: `id_fn` returns one id per example ([n], a batched dataset), so "
            "every component must have the batch as first dimension; got a scalar "
            f"component {component}."
        )
    check = tf.debugging.assert_equal(
        tf.shape(component, out_type=tf.int64)[0],
        n,
        message=(
            "`dataset`: every component of a batched element must have one row per id "
            "returned by `id_fn`"
        ),
    )
    with tf.control_dependencies([check]):
        return tf.boolean_mask(component, kept)


def _uniforms(key: tf.Tensor, start: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """Floats `start .. start + n - 1` of the Philox uniform stream of `key`.

    Float `i` of the stream depends only on `key` and `i` (Philox is
    counter-based), so one example draws the same number whether it is read
    alone or within a batch.
    """
    skip = start % _FLOATS_PER_COUNTER
    counter = tf.stack(
        [tf.cast(start // _FLOATS_PER_COUNTER, tf.uint64), tf.constant(0, tf.uint64)]
    )
    stream = tf.raw_ops.StatelessRandomUniformV2(
        shape=tf.reshape(n + skip, [1]),
        key=key,
        counter=counter,
        alg=_PHILOX,
        dtype=tf.float32,
    )
    return stream[skip:]


def _philox_key(seed: tf.Tensor) -> tf.Tensor:
    seed_pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(0x5EED, tf.int64)])
    key, _ = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed_pair)
    return key


def _call(id_fn: Callable[..., tf.Tensor], element: Any) -> tf.Tensor:
    # As Dataset.map: a tuple element is passed as positional arguments.
    return id_fn(*element) if type(element) is tuple else id_fn(element)


def _check_id_fn(dataset: tf.data.Dataset, id_fn: Callable[..., tf.Tensor]) -> bool:
    """Traces `id_fn` on the element spec; returns whether the dataset is batched."""
    spec = dataset.map(id_fn).element_spec  # Dataset.map calls id_fn as `_call` does
    expected = "a scalar (unbatched) or [n] (batched) int32, int64 or string tensor"
    if not isinstance(spec, tf.TensorSpec):
        raise TypeError(f"`id_fn` must return {expected}, got {spec}.")
    if spec.dtype not in _ID_DTYPES:
        raise TypeError(f"`id_fn` must return {expected}, got dtype {spec.dtype.name}.")
    if spec.shape.rank is None or spec.shape.rank > 1:
        raise ValueError(
            f"`id_fn` must return {expected}, got shape {spec.shape}"
            + (" (set the shape, e.g. with tf.ensure_shape)" if spec.shape.rank is None else "")
            + "."
        )
    return spec.shape.rank == 1


def _as_estimator(frequency: FrequencyLike) -> SamplingProbabilityEstimator:
    if isinstance(frequency, SamplingProbabilityEstimator):
        return frequency
    if isinstance(frequency, (tuple, list)) and len(frequency) == 2:
        ids, counts = frequency
        return ExactFrequencyEstimator(ids, counts)
    raise TypeError(
        "`frequency` must be a SamplingProbabilityEstimator (e.g. "
        "ExactFrequencyEstimator.from_dataset(...)) or an (ids, counts) pair, got "
        + (
            f"a {type(frequency).__name__} of length {len(frequency)}."
            if isinstance(frequency, (tuple, list))
            else f"{type(frequency).__name__}."
        )
    )


def _check_sample(sample: Any) -> float:
    if isinstance(sample, bool) or not isinstance(sample, numbers.Real):
        raise TypeError(
            "`sample` must be a number > 0 (the word2vec threshold `a`, e.g. 1e-3), got "
            f"{type(sample).__name__}."
        )
    if not (math.isfinite(float(sample)) and float(sample) > 0):
        raise ValueError(
            "`sample` must be a finite number > 0 (the word2vec threshold `a`, e.g. 1e-3), "
            f"got {sample!r}."
        )
    return float(sample)


def _check_seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be a Python int or None, got {type(seed).__name__}.")
    if not _INT64_MIN <= int(seed) <= _INT64_MAX:
        raise ValueError(f"`seed` must fit in int64, got {seed}.")
    return int(seed)
