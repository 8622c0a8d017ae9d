"""Tests for tfrs_negatives.data.movielens (offline: fake files and tfds mock data)."""

import os

from tfrs_negatives.data import movielens  # Sets up Keras 2 before TensorFlow loads.

import numpy as np
import pytest
import tensorflow_datasets as tfds  # Does not import TensorFlow yet.

REAL_ML_100K = "/work/shared/data/ml-100k"


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


def _write(folder, files: dict) -> str:
    os.makedirs(folder, exist_ok=True)
    for name, lines in files.items():
        with open(os.path.join(folder, name), "w", encoding="latin-1") as f:
            f.write("\n".join(lines) + "\n")
    return str(folder)


@pytest.fixture
def ml_100k(tmp_path) -> str:
    """A tiny ml-100k folder in the real formats (u.item is latin-1)."""
    return _write(
        tmp_path / "ml-100k",
        {
            "u.item": [
                # Genre flags in u.genre order: 0 unknown, 3 Animation, 4 Children's,
                # 5 Comedy, 8 Drama, 12 Musical.
                f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/x|{_flags(3, 4, 5)}",
                f"2|Misérables, Les (1995)|01-Jan-1995||http://x|{_flags(8, 12)}",
                f"3|unknown||||{_flags(0)}",
                f"4|No Genre (1990)|01-Jan-1990||http://x|{_flags()}",
            ],
            "u.user": [
                "1|24|M|technician|85711",
                "2|53|F|other|94043",
                "3|17|F|none|T8H1N",
                "4|56|M|administrator|01234",
            ],
            "u.data": [
                "3\t2\t5\t881250949",
                "1\t1\t3\t891717742",
                "2\t3\t1\t878887116",
                "4\t4\t4\t884182806",
                "1\t2\t2\t875000000",
            ],
            "u.genre": ["unknown|0", "Action|1"],  # Not read; present in real folders.
        },
    )


def _rows(dataset) -> list:
    """Dataset elements as dicts of bytes, Python numbers and lists."""

    def plain(value):
        return (
            value.tolist()
            if isinstance(value, np.ndarray)
            else (value.item() if isinstance(value, np.generic) else value)
        )

    return [{k: plain(v) for k, v in row.items()} for row in dataset.as_numpy_iterator()]


def _user(uid, gender, bucket, raw_age, label, text, zip_code):
    return {
        "user_id": uid,
        "user_gender": gender,
        "bucketized_user_age": bucket,
        "raw_user_age": raw_age,
        "user_occupation_label": label,
        "user_occupation_text": text,
        "user_zip_code": zip_code,
    }


# tfds ClassLabel ids: Animation 2, Children 3, Comedy 4, Drama 7, Musical 12,
# Unknown 17; occupations: clerical/admin 2, other/not specified 11,
# technician/engineer 18.
TOY = {"movie_id": b"1", "movie_title": b"Toy Story (1995)", "movie_genres": [2, 3, 4]}
MIS = {
    "movie_id": b"2",
    "movie_title": "Misérables, Les (1995)".encode(),
    "movie_genres": [7, 12],
}
UNK = {"movie_id": b"3", "movie_title": b"unknown", "movie_genres": [17]}
NOG = {"movie_id": b"4", "movie_title": b"No Genre (1990)", "movie_genres": []}
U1 = _user(b"1", True, 18.0, 24.0, 18, b"technician", b"85711")
U2 = _user(b"2", False, 50.0, 53.0, 11, b"other", b"94043")
U3 = _user(b"3", False, 1.0, 17.0, 11, b"none", b"T8H1N")
U4 = _user(b"4", True, 56.0, 56.0, 2, b"administrator", b"01234")


def test_local_100k_ratings_values(ml_100k):
    rows = _rows(movielens.load_movielens_local(ml_100k))
    assert rows == [
        {**MIS, **U3, "user_rating": 5.0, "timestamp": 881250949},
        {**TOY, **U1, "user_rating": 3.0, "timestamp": 891717742},
        {**UNK, **U2, "user_rating": 1.0, "timestamp": 878887116},
        {**NOG, **U4, "user_rating": 4.0, "timestamp": 884182806},
        {**MIS, **U1, "user_rating": 2.0, "timestamp": 875000000},
    ]
    assert rows[0]["movie_title"] == b"Mis\xc3\xa9rables, Les (1995)"  # UTF-8.


def test_local_100k_movies_values(ml_100k):
    dataset = movielens.load_movielens_local(ml_100k, config="100k-movies")
    assert _rows(dataset) == [TOY, MIS, UNK, NOG]


def test_local_1m_values(tmp_path):
    folder = _write(
        tmp_path / "ml-1m",
        {
            "movies.dat": [
                "1::Toy Story (1995)::Animation|Children's|Comedy",
                "2::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi",
            ],
            "users.dat": [
                "1::F::1::10::48067",
                "2::M::56::16::70072",
                "3::M::25::4::55117",
            ],
            "ratings.dat": [
                "1::1::5::978300760",
                "2::2::3::978298413",
                "3::1::4::978297867",
            ],
        },
    )
    cite = {
        "movie_id": b"2",
        "movie_genres": [1, 15],
        "movie_title": "Cité des enfants perdus, La (1995)".encode(),
    }
    assert _rows(movielens.load_movielens_local(folder, "1m-movies")) == [TOY, cite]
    user = {
        "user_id": b"1",
        "user_gender": False,
        "bucketized_user_age": 1.0,
        "user_occupation_label": 17,
        "user_occupation_text": b"K-12 student",
        "user_zip_code": b"48067",
    }
    rows = _rows(movielens.load_movielens_local(folder, "1m-ratings"))
    assert rows[0] == {**TOY, **user, "user_rating": 5.0, "timestamp": 978300760}
    assert rows[1]["movie_title"] == cite["movie_title"]
    assert [r["user_occupation_label"] for r in rows] == [17, 16, 17]
    assert [r["user_occupation_text"] for r in rows] == [
        b"K-12 student",
        b"self-employed",
        b"college/grad student",
    ]
    assert [r["bucketized_user_age"] for r in rows] == [1.0, 56.0, 25.0]


@pytest.mark.parametrize("config", movielens.SUPPORTED_CONFIGS)
def test_schema_matches_tfds(config, ml_100k, tmp_path):
    folder = ml_100k
    if config.startswith("1m"):
        folder = _write(
            tmp_path / "ml-1m",
            {
                "movies.dat": ["1::A (1990)::Drama"],
                "users.dat": ["1::F::1::10::48067"],
                "ratings.dat": ["1::1::5::978300760"],
            },
        )
    local = movielens.load_movielens_local(folder, config)
    with tfds.testing.mock_data(num_examples=5):
        reference = tfds.load("movielens/" + config, split="train")
        features = tfds.builder("movielens/" + config).info.features
    assert local.element_spec == reference.element_spec  # Keys, dtypes, shapes.
    # Our hand-written label ids are tfds' ClassLabel ids.
    assert features["movie_genres"].feature.names == list(movielens._GENRES)
    if "user_occupation_label" in features:
        assert features["user_occupation_label"].names == list(movielens._OCCUPATIONS)


def test_load_movielens_sources(ml_100k, monkeypatch):
    dataset, source = movielens.load_movielens(movielens_dir=ml_100k)
    assert source == f"local:{ml_100k}" and len(_rows(dataset)) == 5
    with tfds.testing.mock_data(num_examples=5):
        dataset, source = movielens.load_movielens("100k-movies")
    assert source == "tfds:movielens/100k-movies" and len(list(dataset)) == 5

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(RuntimeError, match="could not download") as err:
        movielens.load_movielens()
    assert "network access" in str(err.value) and "--movielens_dir" in str(err.value)


def test_errors(ml_100k, tmp_path):
    url = "https://grouplens.org/datasets/movielens/100k/"
    with pytest.raises(FileNotFoundError, match="movielens_dir") as err:
        movielens.load_movielens_local(str(tmp_path / "missing"))
    assert url in str(err.value) and "u.data" in str(err.value)
    os.remove(os.path.join(ml_100k, "u.data"))
    with pytest.raises(FileNotFoundError, match="movielens_dir.*'u.data'") as err:
        movielens.load_movielens_local(ml_100k)
    assert url in str(err.value)
    for call in (movielens.load_movielens_local, movielens.load_movielens):
        with pytest.raises(ValueError, match=r"config='25m'.*'100k-ratings'"):
            call(movielens_dir=ml_100k, config="25m")
    with pytest.raises(ValueError, match="split"):
        movielens.load_movielens(movielens_dir=ml_100k, split="test")


@pytest.mark.skipif(not os.path.isdir(REAL_ML_100K), reason="no local ml-100k")
def test_real_ml_100k():
    dataset = movielens.load_movielens_local(REAL_ML_100K)
    columns = dataset.map(lambda row: (row["user_id"], row["movie_title"]))
    users, titles = next(iter(columns.batch(200_000)))
    assert len(users) == 100_000
    assert len(set(users.numpy())) == 943
    assert len(set(titles.numpy())) == 1664
