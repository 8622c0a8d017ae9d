"""Finding the files an offline job wrote (a path or glob, through `tf.io.gfile`)."""

import tensorflow as tf


def matching_files(pattern: str, name: str) -> list:
    """The sorted files matching `pattern` (a path or glob); none is an error naming `name`."""
    files = tf.io.gfile.glob(pattern)
    if not files:
        raise FileNotFoundError(f"`{name}` {pattern!r} matches no file.")
    return sorted(files)
