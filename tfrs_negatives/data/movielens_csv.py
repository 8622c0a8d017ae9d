"""Reading GroupLens' CSV MovieLens releases (ml-latest-small, ml-latest, ml-20m, ml-25m,
ml-32m): `movies.csv` (`movieId,title,genres`, genres `|`-separated) and `ratings.csv`
(`userId,movieId,rating,timestamp`), both UTF-8 with a header line.

The ratings are parsed as numbers in one pass (`np.loadtxt`, about a second per
million ratings): ml-32m holds 32 million.
"""

from __future__ import annotations

import csv
import os
import warnings

import numpy as np

MOVIES_HEADER = ["movieId", "title", "genres"]
RATINGS_HEADER = ["userId", "movieId", "rating", "timestamp"]


def _path(movielens_dir: str, name: str) -> str:
    path = os.path.join(movielens_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"movielens_dir={movielens_dir!r} has no file {name!r}: expected an unzipped "
            "CSV MovieLens folder (ratings.csv, movies.csv), e.g. ml-latest-small.zip from "
            "https://grouplens.org/datasets/movielens/latest/ unzipped."
        )
    return path


def _check_header(path: str, header: list[str], expected: list[str]) -> None:
    if header != expected:
        raise ValueError(f"{path}:1: expected the header {','.join(expected)}, got {header}")


def read_movies(movielens_dir: str) -> list[tuple[str, str, list[str]]]:
    """`(movie_id, title, genre names)` per line of `movies.csv`, in file order."""
    path = _path(movielens_dir, "movies.csv")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file (expected the header {','.join(MOVIES_HEADER)})")
    _check_header(path, rows[0], MOVIES_HEADER)
    movies = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 3:
            raise ValueError(f"{path}:{lineno}: expected 3 comma-separated fields, got {row}")
        movies.append((row[0], row[1], row[2].split("|")))
    return movies


def read_ratings(movielens_dir: str) -> dict[str, np.ndarray]:
    """`ratings.csv` as `[n]` columns `user_id` int64, `movie_id` int64, `user_rating`
    float32, `timestamp` int64, in file order."""
    path = _path(movielens_dir, "ratings.csv")
    with open(path, encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    _check_header(path, header, RATINGS_HEADER)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path}: expected 4 numbers per line ({err})") from None
    if table.size == 0:
        table = np.zeros([0, 4])
    if table.shape[1] != 4:
        raise ValueError(f"{path}: expected 4 comma-separated fields, got {table.shape[1]}")
    return {
        "user_id": table[:, 0].astype(np.int64),
        "movie_id": table[:, 1].astype(np.int64),
        "user_rating": table[:, 2].astype(np.float32),
        "timestamp": table[:, 3].astype(np.int64),
    }


def movie_positions(movie_ids: list[str], rated: np.ndarray, path: str) -> np.ndarray:
    """`[n]` row in `movie_ids` (movies.csv order) of each rated movie id.

    Raises:
      ValueError: a rated id is not in movies.csv (the first one named).
    """
    ids = np.array([int(i) for i in movie_ids], np.int64)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    slots = np.clip(np.searchsorted(sorted_ids, rated), 0, max(len(ids) - 1, 0))
    known = sorted_ids[slots] == rated if len(ids) else np.zeros(len(rated), bool)
    if not known.all():
        first = int(rated[np.argmin(known)])
        raise ValueError(f"{path}: movie id {first} is not in movies.csv")
    return order[slots]
