"""Writing a SavedModel so that `path` never holds a half-written model."""

import json
import os
import shutil
import tempfile
from typing import Any, Dict

from tfrs_negatives.export.loading import METADATA_FILE


def write_atomically(path: str, overwrite: bool, save, metadata: Dict[str, Any]) -> None:
    """Saves into a temporary directory beside `path`, then renames it to `path`."""
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.partial-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the model from a server user
    old = None
    try:
        save(tmp)
        os.makedirs(os.path.join(tmp, os.path.dirname(METADATA_FILE)), exist_ok=True)
        with open(os.path.join(tmp, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=1)
        if os.path.lexists(path):
            if not overwrite:
                raise FileExistsError(
                    f"`path` {path!r} appeared while exporting; pass overwrite=True to replace it."
                )
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.rename(path, os.path.join(old, "model"))
        try:
            os.rename(tmp, path)
        except OSError:
            if old is not None:  # put the previous model back
                os.rename(os.path.join(old, "model"), path)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
