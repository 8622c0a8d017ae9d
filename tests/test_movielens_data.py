"""Tests for tfrs_negatives.data.movielens (offline: fake files and tfds mock data)."""

import os

from tfrs_negatives.data import movielens  # Sets up Keras 2 before TensorFlow loads.
from tfrs_negatives.experiments import compare, load_interactions

import numpy as np
import pytest
import tensorflow_datasets as tfds  # Does not import TensorFlow yet.

REAL_ML_100K = "/work/shared/data/ml-100k"


def _flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


def _write(folder, files: dict, encoding: str = "latin-1") -> str:
    os.makedirs(folder, exist_ok=True)
    for name, lines in files.items():
        with open(os.path.join(folder, name), "w", encoding=encoding) as f:
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


def _user(uid, gender, age, occupation, zip_code):
    """tfds' user features; `age` is (bucket, raw age), `occupation` (label, text)."""
    return {
        "user_id": uid,
        "user_gender": gender,
        "bucketized_user_age": age[0],
        "raw_user_age": age[1],
        "user_occupation_label": occupation[0],
        "user_occupation_text": occupation[1],
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
U1 = _user(b"1", True, (18.0, 24.0), (18, b"technician"), b"85711")
U2 = _user(b"2", False, (50.0, 53.0), (11, b"other"), b"94043")
U3 = _user(b"3", False, (1.0, 17.0), (11, b"none"), b"T8H1N")
U4 = _user(b"4", True, (56.0, 56.0), (2, b"administrator"), b"01234")


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


def _ml_1m(folder) -> str:
    return _write(
        folder,
        {
            "movies.dat": ["1::A (1990)::Drama"],
            "users.dat": ["1::F::1::10::48067"],
            "ratings.dat": ["1::1::5::978300760"],
        },
    )


def _csv(folder, readme=None) -> str:
    """A tiny CSV release (UTF-8, quoted titles) in GroupLens' format."""
    files = {
        "movies.csv": [
            "movieId,title,genres",
            "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
            '11,"American President, The (1995)",Comedy|Drama|Romance',
            "193609,Amélie (2001),(no genres listed)",
        ],
        "ratings.csv": [
            "userId,movieId,rating,timestamp",
            "1,11,4.0,964982703",
            "610,1,3.5,1493848402",
            "1,193609,0.5,1537109082",
        ],
        "links.csv": ["movieId,imdbId,tmdbId"],  # Not read; present in real folders.
    }
    if readme is not None:
        files["README.txt"] = ["Summary", "=======", "", readme]
    return _write(folder, files, encoding="utf-8")


def _folder(release: str, tmp_path, ml_100k) -> str:
    if release == "100k":
        return ml_100k
    if release == "1m":
        return _ml_1m(tmp_path / "ml-1m")
    return _csv(tmp_path / f"ml-{release}")


@pytest.mark.parametrize("config", movielens.SUPPORTED_CONFIGS)
def test_schema_matches_tfds(config, ml_100k, tmp_path):
    release, table = config.rsplit("-", 1)
    local = movielens.load_movielens_local(_folder(release, tmp_path, ml_100k), config)
    # tfds has no ml-latest nor ml-32m: they have the schema of the other CSV releases.
    tfds_config = config if config in movielens.TFDS_CONFIGS else f"latest-small-{table}"
    with tfds.testing.mock_data(num_examples=5):
        reference = tfds.load("movielens/" + tfds_config, split="train")
        features = tfds.builder("movielens/" + tfds_config).info.features
    assert local.element_spec == reference.element_spec  # Keys, dtypes, shapes.
    # Our hand-written label ids are tfds' ClassLabel ids.
    assert features["movie_genres"].feature.names == list(movielens._GENRES)
    if "user_occupation_label" in features:
        assert features["user_occupation_label"].names == list(movielens._OCCUPATIONS)


# tfds ClassLabel ids: Adventure 1, Animation 2, Children 3, Comedy 4, Drama 7,
# Fantasy 8, Romance 14, "(no genres listed)" 20.
TOY_CSV = {"movie_id": b"1", "movie_title": b"Toy Story (1995)", "movie_genres": [1, 2, 3, 4, 8]}
PRESIDENT = {
    "movie_id": b"11",
    "movie_title": b"American President, The (1995)",
    "movie_genres": [4, 7, 14],
}
AMELIE = {"movie_id": b"193609", "movie_title": "Amélie (2001)".encode(), "movie_genres": [20]}


def test_local_csv_ratings_values(tmp_path):
    folder = _csv(tmp_path / "ml-latest-small")
    assert movielens.detect_release(folder) == "latest-small"
    assert _rows(movielens.load_movielens_local(folder)) == [
        {**PRESIDENT, "user_id": b"1", "user_rating": 4.0, "timestamp": 964982703},
        {**TOY_CSV, "user_id": b"610", "user_rating": 3.5, "timestamp": 1493848402},
        {**AMELIE, "user_id": b"1", "user_rating": 0.5, "timestamp": 1537109082},
    ]


def test_local_csv_movies_values(tmp_path):
    folder = _csv(tmp_path / "ml-32m")
    rows = _rows(movielens.load_movielens_local(folder, "32m-movies"))
    assert rows == [TOY_CSV, PRESIDENT, AMELIE]


@pytest.mark.parametrize(
    ("name", "readme", "release"),
    [
        ("ml-25m", None, "25m"),
        ("ml-32m", None, "32m"),
        ("ml-latest", None, "latest"),
        ("renamed", "This dataset (ml-25m) describes 5-star rating ...", "25m"),
        ("ml-32m", "This dataset (ml-latest-small) describes ...", "latest-small"),
        ("renamed", None, "csv"),  # CSV files, release unknown
    ],
)
def test_detect_csv_release(tmp_path, name, readme, release):
    assert movielens.detect_release(_csv(tmp_path / name, readme)) == release


def test_detect_100k_and_1m(ml_100k, tmp_path):
    assert movielens.detect_release(ml_100k) == "100k"
    assert movielens.detect_release(_ml_1m(tmp_path / "renamed")) == "1m"


def test_1m_folder_read_without_a_config(tmp_path):
    folder = _ml_1m(tmp_path / "ml-1m")
    dataset, source = movielens.load_movielens(movielens_dir=folder)
    rows = _rows(dataset)
    assert source == f"local:{folder}"
    assert [(r["user_id"], r["movie_title"], r["timestamp"]) for r in rows] == [
        (b"1", b"A (1990)", 978300760)
    ]
    assert rows[0]["user_occupation_text"] == b"K-12 student"  # ml-1m's demographics


def test_config_contradicting_the_files_names_both(tmp_path):
    folder = _ml_1m(tmp_path / "ml-1m")
    with pytest.raises(ValueError) as err:
        movielens.load_movielens_local(folder, "100k-ratings")
    assert str(err.value).startswith(
        f"config='100k-ratings' asks for ml-100k, but movielens_dir={folder!r} holds ml-1m "
        "(ratings.dat, movies.dat, users.dat)."
    )


def test_csv_config_contradicting_the_readme_names_both(tmp_path):
    folder = _csv(tmp_path / "data", "This dataset (ml-25m) describes 5-star rating ...")
    with pytest.raises(
        ValueError,
        match=r"config='latest-small-ratings' asks for ml-latest-small, but movielens_dir="
        r".* holds ml-25m \(its README.txt or folder name\)",
    ):
        movielens.load_movielens(config="latest-small-ratings", movielens_dir=folder)


def test_csv_config_on_a_100k_folder_names_both(ml_100k):
    with pytest.raises(ValueError, match=r"asks for ml-25m, but .* holds ml-100k \(u.data"):
        movielens.load_movielens_local(ml_100k, "25m-ratings")


def test_unnamed_csv_folder_takes_any_csv_config(tmp_path):
    folder = _csv(tmp_path / "renamed")
    assert len(_rows(movielens.load_movielens_local(folder, "25m-ratings"))) == 3


def test_folder_of_several_formats_needs_a_config(ml_100k, tmp_path):
    _csv(ml_100k)
    with pytest.raises(ValueError, match=r"several MovieLens formats \(u.data, .*ratings.csv"):
        movielens.load_movielens_local(ml_100k)
    assert len(_rows(movielens.load_movielens_local(ml_100k, "100k-ratings"))) == 5


def test_folder_without_movielens_files(tmp_path):
    folder = _write(tmp_path / "empty", {"notes.txt": ["hello"]})
    with pytest.raises(FileNotFoundError) as err:
        movielens.load_movielens_local(folder)
    message = str(err.value)
    assert message.startswith(f"movielens_dir={folder!r} holds no MovieLens files: expected ")
    for name in ("u.data", "ratings.dat", "ratings.csv", "movies.csv", "ml-latest-small"):
        assert name in message


def test_csv_rating_of_an_unknown_movie(tmp_path):
    folder = _csv(tmp_path / "ml-latest-small")
    with open(os.path.join(folder, "ratings.csv"), "a", encoding="utf-8") as f:
        f.write("2,999,5.0,964982703\n")
    with pytest.raises(ValueError, match=r"ratings.csv: movie id 999 is not in movies.csv"):
        movielens.load_movielens_local(folder)


def test_csv_file_with_another_header(tmp_path):
    folder = _csv(tmp_path / "ml-latest-small")
    with open(os.path.join(folder, "ratings.csv"), "w", encoding="utf-8") as f:
        f.write("user,item,rating\n1,1,4.0\n")
    with pytest.raises(ValueError, match=r"ratings.csv:1: expected the header userId,movieId"):
        movielens.load_movielens_local(folder)


def test_local_only_config_without_a_folder():
    with pytest.raises(ValueError, match=r"config='32m-ratings' has no tfds dataset"):
        movielens.load_movielens("32m-ratings")


def test_load_interactions_reads_the_folder_release(tmp_path):
    folder = _ml_1m(tmp_path / "ml-1m")
    loaded = load_interactions(movielens_dir=folder)
    assert loaded.source == f"local:{folder}" and not loaded.synthetic
    assert loaded.users.tolist() == [b"1"] and loaded.items.tolist() == [b"A (1990)"]
    with pytest.raises(ValueError, match=r"config='100k-ratings' asks for ml-100k"):
        load_interactions("movielens/100k-ratings", movielens_dir=folder)


def test_load_interactions_of_a_release_tfds_lacks_needs_a_folder():
    with pytest.raises(ValueError, match=r"--dataset: tfds has no 'movielens/32m-ratings'"):
        load_interactions("movielens/32m-ratings", reachable=lambda: False)


def test_compare_dataset_flag_defaults_to_the_folder_release():
    assert compare.parser().parse_args([]).dataset is None


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
