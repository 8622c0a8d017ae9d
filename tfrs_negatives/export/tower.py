"""`save_tower`: one tower (query or candidate) as a SavedModel serving its embeddings.

The SavedModel's `serving_default` signature takes the tower's raw features by name and
returns `{"embedding": [B, D] float32}`; `tfrs-negatives embed` (`beam.embed_records`)
runs it over TFRecord files to write a catalogue or an anchor file.
"""

import os
from typing import Any, Dict, Mapping, Optional

from tfrs_negatives.export.atomic_write import write_atomically
from tfrs_negatives.export.retrieval import _call, _check_built

import tensorflow as tf

EMBEDDING_OUTPUT = "embedding"


def save_tower(
    tower: tf.keras.layers.Layer,
    path: str,
    features: Mapping[str, tf.TensorSpec],
    call_with_dict: Optional[bool] = None,
    overwrite: bool = False,
) -> str:
    """Exports `tower` as a SavedModel whose `serving_default` returns its embeddings.

    Signature `serving_default`:
      inputs: one tensor per entry of `features`, named by its key, with the spec's
        dtype and shape (the batch dimension is made `None`).
      outputs: `"embedding"` `[B, D]` float32 (the tower's output, cast).

    How the tower is called: with the dict `{name: tensor}` of all features when
    `call_with_dict` is True; with the one feature's tensor when it is False (then
    `features` must hold exactly one entry); when None (the default), with the tensor
    if there is one feature and with the dict if there are more. A Keras layer is
    called with `training=False`.

    The SavedModel is written to a temporary directory beside `path` and renamed into
    place, so `path` never holds a half-written model.

    Args:
      tower: A built Keras layer or model from raw features to `[B, D]` embeddings.
      path: Directory to write (its parent is created).
      features: Input name -> batch-first `tf.TensorSpec`, e.g.
        `{"user_id": tf.TensorSpec([None], tf.string)}`.
      call_with_dict: See above.
      overwrite: Replace an existing `path`.

    Returns:
      `path` (absolute).

    Raises:
      ValueError: `features` empty or not batch-first `TensorSpec`s; `call_with_dict=False`
        with several features; an unbuilt tower; a tower output that is not `[B, D]`
        floating point.
      FileExistsError: `path` exists and `overwrite` is False.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"`path` {path!r} already exists; pass overwrite=True to replace it.")
    _check_built(tower, "tower")
    signature = _signature(features)
    if call_with_dict is None:
        call_with_dict = len(signature) > 1
    if not call_with_dict and len(signature) != 1:
        raise ValueError(
            "`call_with_dict=False` calls the tower with one tensor, so `features` must hold "
            f"exactly one entry, got {sorted(signature)}."
        )
    module = _TowerModule(tower, None if call_with_dict else next(iter(signature)))
    serve = tf.function(module.embed, input_signature=[signature], autograph=False)
    module.serve = serve
    concrete = serve.get_concrete_function()  # traces: checks the tower's output
    metadata = {
        "format": "tfrs_negatives.export.tower/1",
        "inputs": {
            name: {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}
            for name, spec in signature.items()
        },
        "call_with_dict": bool(call_with_dict),
        "outputs": [EMBEDDING_OUTPUT],
        "dim": concrete.structured_outputs[EMBEDDING_OUTPUT].shape[-1],
        "tensorflow": tf.__version__,
    }
    write_atomically(
        path,
        overwrite,
        lambda tmp: tf.saved_model.save(module, tmp, signatures={"serving_default": concrete}),
        metadata,
    )
    return path


def _signature(features: Mapping[str, tf.TensorSpec]) -> Dict[str, tf.TensorSpec]:
    """`features` with batch dimension `None` and each spec named by its key."""
    if not isinstance(features, Mapping) or not features:
        raise ValueError(
            "`features` must be a non-empty dict of input name -> tf.TensorSpec, e.g. "
            f'{{"user_id": tf.TensorSpec([None], tf.string)}}, got {features!r}.'
        )
    signature = {}
    for name, spec in features.items():
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank in (None, 0):
            raise ValueError(
                f"`features[{name!r}]` must be a tf.TensorSpec with a batch dimension first "
                f"(e.g. tf.TensorSpec([None], tf.string)), got {spec!r}."
            )
        signature[str(name)] = tf.TensorSpec(
            [None, *spec.shape.as_list()[1:]], spec.dtype, name=str(name)
        )
    return signature


class _TowerModule(tf.Module):
    """What is saved: the tower and how to call it."""

    def __init__(self, tower: Any, single: Optional[str]):
        super().__init__(name="tower")
        self.tower = tower
        self._single = single

    def embed(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        """`{"embedding": [B, D] float32}` of the raw features in `inputs`."""
        features = inputs[self._single] if self._single is not None else dict(inputs)
        embeddings = _call(self.tower, features)
        if not isinstance(embeddings, tf.Tensor) or embeddings.shape.rank != 2:
            raise ValueError(
                "`tower` must map its features to [batch, D] embeddings, got "
                f"{getattr(embeddings, 'shape', type(embeddings).__name__)}."
            )
        if not embeddings.dtype.is_floating:
            raise ValueError(
                f"`tower` must return floating-point embeddings, got dtype {embeddings.dtype.name}."
            )
        return {EMBEDDING_OUTPUT: tf.cast(embeddings, tf.float32)}
