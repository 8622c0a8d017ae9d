"""MovieLens as a `tf.data.Dataset`, from tfds or from a local copy of the raw files.

`load_movielens_local` parses an unzipped GroupLens folder (ml-100k or ml-1m) into
examples with the same feature names, dtypes, shapes and values as
`tfds.load("movielens/<config>")`: strings are UTF-8 `tf.string` (the raw files
are latin-1), genres and occupation labels are the integer ids of the tfds
`ClassLabel`s, ages, ratings and gender have tfds' dtypes. Rows follow the order of
the ratings file (tfds itself serves them in its own shuffled order).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

SUPPORTED_CONFIGS = ("100k-ratings", "100k-movies", "1m-ratings", "1m-movies")

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


def _check_config(config: str) -> tuple[str, str]:
    if config not in SUPPORTED_CONFIGS:
        raise ValueError(
            f"config={config!r} is not supported; use one of {list(SUPPORTED_CONFIGS)}."
        )
    version, table = config.split("-")
    return version, table


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
    if version == "100k":
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


def load_movielens_local(
    movielens_dir: str | os.PathLike, config: str = "100k-ratings"
) -> tf.data.Dataset:
    """Reads unzipped GroupLens MovieLens files into tfds' `movielens/<config>` format.

    Args:
        movielens_dir: Folder of the unzipped archive: `ml-100k` (u.data, u.item,
            u.user) or `ml-1m` (ratings.dat, movies.dat, users.dat).
        config: One of `SUPPORTED_CONFIGS`, named as the tfds configs.

    Returns:
        A dataset of feature dicts with the keys, dtypes and shapes of
        `tfds.load("movielens/" + config, split="train")`, in file order.

    Raises:
        ValueError: `config` is not supported, or a file is malformed.
        FileNotFoundError: `movielens_dir` or one of its expected files is missing.
    """
    version, table = _check_config(config)
    movielens_dir = os.path.expanduser(os.fspath(movielens_dir))
    if not os.path.isdir(movielens_dir):
        raise FileNotFoundError(
            f"movielens_dir={movielens_dir!r} is not a directory: expected an unzipped "
            f"ml-{version} folder ({', '.join(_FILES[version][:3])}). Download "
            f"ml-{version}.zip from https://grouplens.org/datasets/movielens/{version}/"
            " and unzip it."
        )
    movies = _movies(movielens_dir, version)
    ids, titles, genres = zip(*movies) if movies else ((), (), ())
    cols = {}
    if table == "movies":
        pos = list(range(len(movies)))
    else:
        ratings_file, _, _, sep, _ = _FILES[version]
        users = _users(movielens_dir, version)
        ratings = _read(movielens_dir, version, ratings_file, sep, 4)
        index = {movie_id: i for i, movie_id in enumerate(ids)}
        try:
            pos = [index[r[1]] for r in ratings]
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
    # Genres are ragged: keep them flat and give each row its movie's (start, length).
    lengths = np.array([len(g) for g in genres], np.int64)
    starts = np.cumsum(lengths) - lengths
    flat = tf.constant([g for row in genres for g in row], tf.int64)
    cols["_start"], cols["_length"] = starts[pos], lengths[pos]
    movie_ids = tf.constant([ids[i] for i in pos], tf.string)
    movie_titles = tf.constant([titles[i] for i in pos], tf.string)

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


def load_movielens(
    config: str = "100k-ratings",
    movielens_dir: str | os.PathLike | None = None,
    split: str = "train",
) -> tuple[tf.data.Dataset, str]:
    """Loads MovieLens from a local folder if given, else through tfds.

    Args:
        config: One of `SUPPORTED_CONFIGS`.
        movielens_dir: Unzipped GroupLens folder (e.g. `ml-100k`); None uses tfds.
        split: tfds split; a local folder only has "train".

    Returns:
        The dataset and its source: "local:<movielens_dir>" or
        "tfds:movielens/<config>".

    Raises:
        ValueError: `config` is not supported, or `split` is not "train" locally.
        RuntimeError: tfds could not download or load the data.
    """
    _check_config(config)
    if movielens_dir is not None:
        if split != "train":
            msg = f"split={split!r}: a local MovieLens folder has only 'train'."
            raise ValueError(msg)
        source = f"local:{os.fspath(movielens_dir)}"
        return load_movielens_local(movielens_dir, config), source
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
