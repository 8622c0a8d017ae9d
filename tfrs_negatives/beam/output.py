"""Pipeline outputs that appear whole or not at all: written under a temporary prefix, then moved.

Paths go through Beam's `FileSystems`, so a local path, `gs://` or another registered
file system works alike.
"""

import contextlib
import os
import posixpath
import uuid
from typing import Iterator, List

from apache_beam.io.filesystems import FileSystems


def existing_outputs(prefix: str) -> List[str]:
    """Paths of the sharded files `prefix-SSSSS-of-NNNNN` already there."""
    return [m.path for m in FileSystems.match([f"{prefix}-*-of-*"])[0].metadata_list]


@contextlib.contextmanager
def staged_prefix(prefix: str, overwrite: bool = False) -> Iterator[str]:
    """Yields a temporary prefix beside `prefix`; on success moves its files to `prefix`.

    Only the sharded files of the yielded prefix (`NAME-SSSSS-of-NNNNN`) move; anything
    else a pipeline writes in the temporary directory (e.g. shard indexes) is deleted
    with it. On any error the temporary files are deleted and `prefix` is untouched.

    Raises:
      FileExistsError: files of `prefix` exist and `overwrite` is False.
    """
    if existing_outputs(prefix) and not overwrite:
        raise FileExistsError(
            f"`--output` {prefix!r} already has files ({existing_outputs(prefix)[:2]}...); "
            "pass --overwrite to replace them."
        )
    parent, name = posixpath.split(prefix) if "://" in prefix else _local_split(prefix)
    staging = FileSystems.join(parent, f".{name}.partial-{uuid.uuid4().hex[:8]}")
    FileSystems.mkdirs(staging)
    try:
        yield FileSystems.join(staging, name)
        pattern = FileSystems.join(staging, f"{name}-*-of-*")
        written = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
        old = existing_outputs(prefix)
        if old:
            FileSystems.delete(old)
        FileSystems.rename(written, [FileSystems.join(parent, _basename(p)) for p in written])
    finally:
        if FileSystems.exists(staging):
            FileSystems.delete([staging])


def _local_split(prefix: str):
    parent, name = os.path.split(os.path.abspath(prefix))
    os.makedirs(parent, exist_ok=True)
    return parent, name


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
