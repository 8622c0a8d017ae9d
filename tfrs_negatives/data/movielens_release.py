"""Which MovieLens release an unzipped GroupLens folder holds, told from its files.

* ml-100k: `u.data`, `u.item`, `u.user` (tab / `|` separated, latin-1);
* ml-1m: `ratings.dat`, `movies.dat`, `users.dat` (`::` separated, latin-1);
* the CSV releases ml-latest-small, ml-latest, ml-20m, ml-25m, ml-32m: `ratings.csv`,
  `movies.csv` (UTF-8, no user demographics). Which one is read from the first lines of
  its `README.txt` ("This dataset (ml-25m) describes ...") or the folder's name; a CSV
  folder that says neither is the release `UNKNOWN_CSV`.

Configs are named as tfds' `movielens/<config>`: `<release>-ratings` or
`<release>-movies`.
"""

from __future__ import annotations

import os
import re

FORMAT_FILES = {
    "100k": ("u.data", "u.item", "u.user"),
    "1m": ("ratings.dat", "movies.dat", "users.dat"),
    "csv": ("ratings.csv", "movies.csv"),
}
CSV_RELEASES = ("latest-small", "latest", "20m", "25m", "32m")
RELEASES = ("100k", "1m", *CSV_RELEASES)
UNKNOWN_CSV = "csv"  # a CSV release whose README.txt and folder name do not say which
TABLES = ("ratings", "movies")
SUPPORTED_CONFIGS = tuple(f"{release}-{table}" for release in RELEASES for table in TABLES)
LOCAL_ONLY_RELEASES = ("latest", "32m")  # tfds has no config for them
TFDS_CONFIGS = tuple(
    f"{release}-{table}"
    for release in RELEASES
    if release not in LOCAL_ONLY_RELEASES
    for table in TABLES
)
DOWNLOAD_PAGE = "https://grouplens.org/datasets/movielens/"
_README_NAME = re.compile(r"This dataset \(ml-([\w.-]+)\)")


def split_config(config: str) -> tuple[str, str]:
    """`(release, table)` of a config such as `"latest-small-ratings"`.

    Raises:
      ValueError: `config` is not one of `SUPPORTED_CONFIGS`.
    """
    if config not in SUPPORTED_CONFIGS:
        raise ValueError(
            f"config={config!r} is not supported; use one of {list(SUPPORTED_CONFIGS)}."
        )
    release, table = config.rsplit("-", 1)
    return release, table


def release_format(release: str) -> str:
    """`"100k"`, `"1m"` or `"csv"`: the file format of `release`."""
    return release if release in ("100k", "1m") else "csv"


def describe_formats() -> str:
    """The releases a folder may hold and their files, for error messages."""
    csv_names = ", ".join(f"ml-{r}" for r in CSV_RELEASES)
    return (
        f"ml-100k ({', '.join(FORMAT_FILES['100k'])}), ml-1m ({', '.join(FORMAT_FILES['1m'])}) "
        f"or a CSV release {csv_names} ({', '.join(FORMAT_FILES['csv'])})"
    )


def csv_release_name(movielens_dir: str) -> str | None:
    """The CSV release named by `README.txt` or else by the folder's name; None if neither."""
    readme = os.path.join(movielens_dir, "README.txt")
    if os.path.isfile(readme):
        with open(readme, encoding="utf-8", errors="replace") as f:
            match = _README_NAME.search(f.read(4096))
        if match and match.group(1) in CSV_RELEASES:
            return match.group(1)
    name = os.path.basename(os.path.normpath(movielens_dir))
    if name.startswith("ml-") and name[3:] in CSV_RELEASES:
        return name[3:]
    return None


def detect_release(movielens_dir: str | os.PathLike, config: str | None = None) -> str:
    """The release an unzipped folder holds (one of `RELEASES`, or `UNKNOWN_CSV`).

    Args:
      movielens_dir: The folder.
      config: A config the caller asked for (`SUPPORTED_CONFIGS`); it must agree
        with the files. None: told from the files alone.

    Returns:
      The release: the config's when given (and agreeing), else the files'.

    Raises:
      FileNotFoundError: `movielens_dir` is not a folder, or holds no MovieLens file.
      ValueError: `config` contradicts the files (both named), the folder holds files
        of several formats and no `config` says which, or `config` is unknown.
    """
    wanted = split_config(config)[0] if config is not None else None
    movielens_dir = os.fspath(movielens_dir)
    if not os.path.isdir(movielens_dir):
        raise FileNotFoundError(
            f"movielens_dir={movielens_dir!r} is not a directory: expected an unzipped "
            f"MovieLens folder, {describe_formats()}. Download one (e.g. ml-100k.zip from "
            f"{DOWNLOAD_PAGE}100k/) and unzip it."
        )
    names = set(os.listdir(movielens_dir))
    present = [fmt for fmt, files in FORMAT_FILES.items() if names & set(files)]
    if wanted is not None:
        return _agreeing(movielens_dir, config, wanted, present, names)
    if not present:
        raise FileNotFoundError(
            f"movielens_dir={movielens_dir!r} holds no MovieLens files: expected "
            f"{describe_formats()}. Download a release from {DOWNLOAD_PAGE} and unzip it."
        )
    if len(present) > 1:
        raise ValueError(
            f"movielens_dir={movielens_dir!r} holds files of several MovieLens formats "
            f"({_files_of(present, names)}): say which with the config "
            "(--dataset movielens/<config>)."
        )
    if present[0] == "csv":
        return csv_release_name(movielens_dir) or UNKNOWN_CSV
    return present[0]


def _agreeing(movielens_dir: str, config: str, wanted: str, present: list, names: set) -> str:
    """`wanted` if the folder's files may hold it; a ValueError naming both if not."""
    fmt = release_format(wanted)
    found = None
    if fmt in present:
        named = csv_release_name(movielens_dir) if fmt == "csv" else None
        if named in (None, wanted):
            return wanted
        found = f"ml-{named} (its README.txt or folder name)"
    elif present:
        found = f"{'/'.join(_release_names(present))} ({_files_of(present, names)})"
    if found is None:  # no MovieLens file at all: reading reports the missing one
        return wanted
    raise ValueError(
        f"config={config!r} asks for ml-{wanted}, but movielens_dir={movielens_dir!r} holds "
        f"{found}. Leave the config out to read what the folder holds, or point at an "
        f"ml-{wanted} folder."
    )


def _release_names(formats: list) -> list:
    return ["ml-" + fmt if fmt != "csv" else "a CSV release" for fmt in formats]


def _files_of(formats: list, names: set) -> str:
    return ", ".join(name for fmt in formats for name in FORMAT_FILES[fmt] if name in names)
