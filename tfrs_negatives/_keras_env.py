"""Makes sure TensorFlow routes `tf.keras` to Keras 2 (tf-keras), as TFRS needs.

TensorFlow 2.16+ ships Keras 3 as `tf.keras` unless `TF_USE_LEGACY_KERAS=1` is set
before `tf.keras` is first resolved. TensorFlow Recommenders only works with Keras 2.
"""

import os
import sys

_FIX = (
    "tfrs_negatives needs TensorFlow's Keras 2 (the `tf-keras` package), which "
    "TensorFlow uses only when the environment variable TF_USE_LEGACY_KERAS=1 is set "
    "before TensorFlow is imported. Fix: import tfrs_negatives before tensorflow, or "
    "run with `TF_USE_LEGACY_KERAS=1 python ...`, or put "
    "`os.environ['TF_USE_LEGACY_KERAS'] = '1'` at the very top of your program."
)


def ensure_legacy_keras() -> None:
    """Sets `TF_USE_LEGACY_KERAS=1`, or fails clearly if it is too late to.

    Raises:
      ImportError: TensorFlow was already loaded and resolved `tf.keras` to Keras 3.
    """
    if "tensorflow" not in sys.modules:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        return
    # TensorFlow is loaded; `tf.keras` is a lazy loader that reads the variable
    # the first time it is resolved, so setting it may still be in time.
    if os.environ.get("TF_USE_LEGACY_KERAS") not in ("1", "true", "True"):
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf  # noqa: PLC0415  (already in sys.modules)

    layer_module = tf.keras.layers.Layer.__module__
    if not layer_module.startswith("tf_keras"):
        raise ImportError(
            "TensorFlow was imported before tfrs_negatives and `tf.keras` is Keras 3 "
            f"(its layers come from `{layer_module}`). {_FIX}"
        )
