"""Importing tfrs_negatives selects Keras 2, or fails clearly when too late."""

import os
import subprocess
import sys

import pytest


def _run(code: str, **env):
    environ = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    environ.update(env, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


def test_import_first_selects_keras_2():
    result = _run(
        "import os, tfrs_negatives, tensorflow as tf;"
        "print(os.environ['TF_USE_LEGACY_KERAS'], tf.keras.layers.Layer.__module__)"
    )
    assert result.returncode == 0, result.stderr
    flag, module = result.stdout.split()
    assert flag == "1" and module.startswith("tf_keras")


def test_import_after_keras_3_raises_clear_error():
    result = _run("import tensorflow as tf; tf.keras.layers; import tfrs_negatives")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert (
        "TF_USE_LEGACY_KERAS=1" in result.stderr and "import tfrs_negatives before" in result.stderr
    )


@pytest.mark.parametrize(
    "code", ["import tensorflow as tf; import tfrs_negatives; tf.keras.layers"]
)
def test_import_after_tensorflow_but_before_keras_works(code):
    result = _run(code + "; print(tf.keras.layers.Layer.__module__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("tf_keras")
