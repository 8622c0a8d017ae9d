"""MovieLens as a `tf.data.Dataset`, from tfds or from a local copy of the raw files.

`load_movielens_local` parses an unzipped GroupLens folder into examples with the same
feature names, dtypes, shapes and values as `tfds.load("movielens/<config>")`. The
release is told from the folder's files (`movielens_release`): ml-100k and ml-1m
(with user demographics), or a CSV release — ml-latest-small, ml-latest, ml-20m,
ml-25m, ml-32m — read like tfds' `movielens/latest-small-ratings` (movie and rating
features only). Strings are UTF-8 `tf.string` (ml-100k's and ml-1m's files are
latin-1), genres and occupation labels are the integer ids of the tfds `ClassLabel`s,
ages, ratings and gender have tfds' dtypes. Rows follow the order of the ratings file
(tfds itself serves them in its own shuffled order).
"""

from __future__ import annotations

import os

from tfrs_negatives.data import movielens_csv
from tfrs_negatives.data.movielens_release import (  # SUPPORTED_CONFIGS: re-exported
    SUPPORTED_CONFIGS,  # noqa: F401
    TFDS_CONFIGS,
    detect_release,
    release_format,
    split_config,
)

import numpy as np
import tensorflow as tf

# fmt: off
# Class names of the tfds `ClassLabel` features; a label is its index here.
_GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "Unknown", "War", "Western", "(no genres listed)",
)
_OCCUPATIONS = (
    "academic/educator", "artist", "clerical/admin", "customer service",
    "doctor/health care", "entertainment", "executive/managerial", "farmer",
    "homemaker", "lawyer", "librarian", "other/not specified", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "student",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)
# ml-100k: the 19 genre flags of u.item, in file order (as listed in u.genre).
_GENRE_FLAGS_100K = (
    "Unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
# ml-100k occupation text -> the label shared with ml-1m.
_OCCUPATION_100K = {
    "administrator": "clerical/admin", "doctor": "doctor/health care",
    "educator": "academic/educator", "engineer": "technician/engineer",
    "executive": "executive/managerial", "healthcare": "doctor/health care",
    "marketing": "sales/marketing", "none": "other/not specified",
    "other": "other/not specified", "salesman": "sales/marketing",
    "technician": "technician/engineer",
}
# ml-1m users.dat occupation codes 0..20.
_OCCUPATION_1M = (
    "other/not specified", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care",
    "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)
# fmt: on
_AGE_BUCKETS = (18, 25, 35, 45, 50, 56)  # bucket = largest threshold <= age, else 1
_FILES = {  # version -> (ratings, movies, users, ratings separator, separator)
    "100k": ("u.data", "u.item", "u.user", "\t", "|"),
    "1m": ("ratings.dat", "movies.dat", "users.dat", "::", "::"),
}


def _read(movielens_dir: str, version: str, name: str, sep: str, n: int) -> list:
    """Returns the rows of a latin-1 file as lists of `n` fields."""
    path = os.path.join(movielens_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"movielens_dir={movielens_dir!r} has no file {name!r}: expected an "
            f"unzipped ml-{version} folder. Download ml-{version}.zip from "
            f"https://grouplens.org/datasets/movielens/{version}/ and unzip it."
        )
    with open(path, "rb") as f:
        lines = f.read().decode("latin-1").split("\n")
    rows = []
    for lineno, line in enumerate(lines, start=1):
        if line := line.strip():
            fields = line.split(sep)
            if len(fields) != n:
                raise ValueError(
                    f"{path}:{lineno}: expected {n} {sep!r}-separated "
                    f"fields, got {len(fields)}: {line!r}"
                )
            rows.append(fields)
    return rows


def _genre_ids(names: list[str], where: str) -> list[int]:
    try:
        return [_GENRES.index("Children" if g == "Children's" else g) for g in names]
    except ValueError:
        raise ValueError(f"{where}: unknown genre in {names}") from None


def _movies(movielens_dir: str, version: str) -> list[tuple[str, str, list[int]]]:
    """Returns (movie_id, movie_title, genre label ids) per movie, in file order."""
    movies = []
    if version == "csv":
        for movie_id, title, names in movielens_csv.read_movies(movielens_dir):
            movies.append((movie_id, title, _genre_ids(names, f"movies.csv: movie {movie_id}")))
    elif version == "100k":
        for r in _read(movielens_dir, version, "u.item", "|", 24):
            names = [g for g, flag in zip(_GENRE_FLAGS_100K, r[5:]) if flag == "1"]
            movies.append((r[0], r[1], _genre_ids(names, f"u.item: movie {r[0]}")))
    else:
        for r in _read(movielens_dir, version, "movies.dat", "::", 3):
            names = r[2].split("|")
            movies.append((r[0], r[1], _genre_ids(names, f"movies.dat: movie {r[0]}")))
    return movies


def _users(movielens_dir: str, version: str) -> dict[str, tuple]:
    """Returns user_id -> (gender, age bucket, raw age, occupation label, text, zip)."""
    users = {}
    _, _, name, _, sep = _FILES[version]
    for r in _read(movielens_dir, version, name, sep, 5):
        if version == "100k":
            user_id, age, gender, text, zip_code = r
            if text not in _OCCUPATION_100K and text not in _OCCUPATIONS:
                raise ValueError(f"{name}: user {user_id}: unknown occupation {text!r}")
            label = _OCCUPATION_100K.get(text, text)
            bucket = max([1] + [t for t in _AGE_BUCKETS if int(age) >= t])
        else:
            user_id, gender, age, code, zip_code = r
            text = _OCCUPATION_1M[int(code)]
            label = "student" if text.endswith("student") else text
            bucket = int(age)
        users[user_id] = (
            gender == "M",
            bucket,
            int(age),
            _OCCUPATIONS.index(label),
            text,
            zip_code,
        )
    return users


def _ratings_with_users(
    movielens_dir: str, version: str, movie_ids: tuple
) -> tuple[np.ndarray, dict]:
    """ml-100k / ml-1m: `(row of each rating's movie, feature columns)`, demographics joined."""
    ratings_file, _, _, sep, _ = _FILES[version]
    users = _users(movielens_dir, version)
    ratings = _read(movielens_dir, version, ratings_file, sep, 4)
    index = {movie_id: i for i, movie_id in enumerate(movie_ids)}
    try:
        pos = np.array([index[r[1]] for r in ratings], np.int64)
        demo = list(zip(*(users[r[0]] for r in ratings))) or [()] * 6
    except KeyError as err:
        msg = f"{ratings_file}: unknown user or movie id {err}"
        raise ValueError(msg) from None
    cols = {
        "user_id": tf.constant([r[0] for r in ratings], tf.string),
        "user_rating": np.array([r[2] for r in ratings], np.float32),
        "timestamp": np.array([r[3] for r in ratings], np.int64),
        "user_gender": np.array(demo[0], np.bool_),
        "bucketized_user_age": np.array(demo[1], np.float32),
        "user_occupation_label": np.array(demo[3], np.int64),
        "user_occupation_text": tf.constant(demo[4], tf.string),
        "user_zip_code": tf.constant(demo[5], tf.string),
    }
    if version == "100k":
        cols["raw_user_age"] = np.array(demo[2], np.float32)
    return pos, cols


def _csv_ratings(movielens_dir: str, movie_ids: tuple) -> tuple[np.ndarray, dict]:
    """CSV releases: `(row of each rating's movie, feature columns)`; no demographics."""
    ratings = movielens_csv.read_ratings(movielens_dir)
    path = os.path.join(movielens_dir, "ratings.csv")
    pos = movielens_csv.movie_positions(list(movie_ids), ratings["movie_id"], path)
    cols = {
        "user_id": tf.strings.as_string(ratings["user_id"]),
        "user_rating": ratings["user_rating"],
        "timestamp": ratings["timestamp"],
    }
    return pos, cols


def _examples(movies: list, pos: np.ndarray, cols: dict) -> tf.data.Dataset:
    """One example per entry of `pos` (a row of `movies`): its movie's features + `cols`."""
    ids, titles, genres = zip(*movies) if movies else ((), (), ())
    # Genres are ragged: keep them flat and give each row its movie's (start, length).
    lengths = np.array([len(g) for g in genres], np.int64)
    starts = np.cumsum(lengths) - lengths
    flat = tf.constant([g for row in genres for g in row], tf.int64)
    cols = dict(cols, _start=starts[pos], _length=lengths[pos])
    movie_ids = tf.gather(tf.constant(ids, tf.string, shape=[len(ids)]), pos)
    movie_titles = tf.gather(tf.constant(titles, tf.string, shape=[len(titles)]), pos)

    def with_genres(row: dict) -> dict:
        start, length = row.pop("_start"), row.pop("_length")
        genre_ids = tf.slice(flat, tf.reshape(start, [1]), tf.reshape(length, [1]))
        return {
            "movie_id": row.pop("movie_id"),
            "movie_title": row.pop("movie_title"),
            "movie_genres": genre_ids,
            **row,
        }

    cols = {"movie_id": movie_ids, "movie_title": movie_titles, **cols}
    return tf.data.Dataset.from_tensor_slices(cols).map(with_genres)


def load_movielens_local(
    movielens_dir: str | os.PathLike, config: str | None = None
) -> tf.data.Dataset:
    """Reads unzipped GroupLens MovieLens files into tfds' `movielens/<config>` format.

    Args:
        movielens_dir: Folder of the unzipped archive: `ml-100k` (u.data, u.item,
            u.user), `ml-1m` (ratings.dat, movies.dat, users.dat), or a CSV release
            `ml-latest-small`, `ml-latest`, `ml-20m`, `ml-25m`, `ml-32m` (ratings.csv,
            movies.csv).
        config: One of `SUPPORTED_CONFIGS`, named as the tfds configs
            (`"1m-ratings"`, `"latest-small-movies"`, ...). None: the ratings of the
            release the folder holds. A config of another release than the folder's
            is an error.

    Returns:
        A dataset of feature dicts with the keys, dtypes and shapes of
        `tfds.load("movielens/" + config, split="train")` (for ml-latest and ml-32m,
        which tfds lacks, those of `latest-small`), in file order.

    Raises:
        ValueError: `config` is not supported or contradicts the files (both
            named), or a file is malformed.
        FileNotFoundError: `movielens_dir` or one of its expected files is missing.
    """
    movielens_dir = os.path.expanduser(os.fspath(movielens_dir))
    release = detect_release(movielens_dir, config)
    table = split_config(config)[1] if config is not None else "ratings"
    version = release_format(release)
    movies = _movies(movielens_dir, version)
    if table == "movies":
        return _examples(movies, np.arange(len(movies)), {})
    movie_ids = tuple(movie[0] for movie in movies)
    if version == "csv":
        pos, cols = _csv_ratings(movielens_dir, movie_ids)
    else:
        pos, cols = _ratings_with_users(movielens_dir, version, movie_ids)
    return _examples(movies, pos, cols)


def load_movielens(
    config: str | None = None,
    movielens_dir: str | os.PathLike | None = None,
    split: str = "train",
) -> tuple[tf.data.Dataset, str]:
    """Loads MovieLens from a local folder if given, else through tfds.

    Args:
        config: One of `SUPPORTED_CONFIGS` (through tfds: of `TFDS_CONFIGS`). None:
            the ratings of the folder's release, or `"100k-ratings"` through tfds.
        movielens_dir: Unzipped GroupLens folder (e.g. `ml-100k`); None uses tfds.
        split: tfds split; a local folder only has "train".

    Returns:
        The dataset and its source: "local:<movielens_dir>" or
        "tfds:movielens/<config>".

    Raises:
        ValueError: `config` is not supported (or not in tfds without a folder), or
            contradicts the folder's files, or `split` is not "train" locally.
        RuntimeError: tfds could not download or load the data.
    """
    if config is not None:
        split_config(config)
    if movielens_dir is not None:
        if split != "train":
            msg = f"split={split!r}: a local MovieLens folder has only 'train'."
            raise ValueError(msg)
        source = f"local:{os.fspath(movielens_dir)}"
        return load_movielens_local(movielens_dir, config), source
    config = "100k-ratings" if config is None else config
    if config not in TFDS_CONFIGS:
        raise ValueError(
            f"config={config!r} has no tfds dataset (tfds has {list(TFDS_CONFIGS)}); read it "
            "from an unzipped GroupLens folder instead (movielens_dir, --movielens_dir)."
        )
    import tensorflow_datasets as tfds  # Heavy import, only needed here.

    name = f"movielens/{config}"
    try:
        dataset = tfds.load(name, split=split)
    except Exception as err:
        raise RuntimeError(
            f"tfds could not download or load {name!r} ({type(err).__name__}: {err}). "
            "Get MovieLens one of two ways: give tfds network access (it downloads "
            "from files.grouplens.org into ~/tensorflow_datasets), or pass "
            "movielens_dir (--movielens_dir in the examples and benchmarks) pointing "
            "at an unzipped ml-100k folder from "
            "https://grouplens.org/datasets/movielens/100k/."
        ) from err
    return dataset, f"tfds:{name}"
