"""A TFRS ranker on MovieLens with subsampled negatives, with and without the prior correction.

The ranking side of the problem: logged impressions where a rating >= 4 is the click and a
lower rating a shown-not-clicked negative. An 80/20 random split (seed 42) of
`movielens/100k-ratings`; a `tfrs.tasks.Ranking` model (user and title embeddings of 32,
dense 64-32-1, sigmoid) trained with binary cross-entropy, Adagrad(0.1), batch 4096, from
the same initial weights in every run:

* `full`: the whole training log;
* `subsampled`: every click and a `--rate` share of the negatives
  (`ranking.subsample_negatives`), predictions taken as they come (too high);
* `prior_corrected`: the same model's predictions through `ranking.PriorCorrection(rate)`;
* `weighted`: the subsample with importance weights `1 / rate` on kept negatives.

Prints test log-loss, expected calibration error (10 bins) and the mean predicted click rate
beside the test click rate.

Usage:
  python examples/movielens_ranking_subsampling.py --movielens_dir ../shared/data/ml-100k
"""

import argparse
from typing import Dict, Optional, Sequence

from tfrs_negatives.data import load_movielens
from tfrs_negatives.experiments.harness import main, write_json
from tfrs_negatives.ranking import (
    PriorCorrection,
    expected_calibration_error,
    log_loss,
    subsample_negatives,
)

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

RUNS = ("full", "subsampled", "prior_corrected", "weighted")


class Ranker(tfrs.Model):
    """User and title embeddings, a dense tower, a click probability; `tfrs.tasks.Ranking`."""

    def __init__(self, users: np.ndarray, titles: np.ndarray) -> None:
        super().__init__()
        self.user = tf.keras.Sequential(
            [
                tf.keras.layers.StringLookup(vocabulary=users),
                tf.keras.layers.Embedding(len(users) + 1, 32),
            ]
        )
        self.title = tf.keras.Sequential(
            [
                tf.keras.layers.StringLookup(vocabulary=titles),
                tf.keras.layers.Embedding(len(titles) + 1, 32),
            ]
        )
        self.head = tf.keras.Sequential(
            [tf.keras.layers.Dense(64, "relu"), tf.keras.layers.Dense(32, "relu"),
             tf.keras.layers.Dense(1, "sigmoid")]
        )  # fmt: skip
        self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.BinaryCrossentropy())

    def call(self, features: Dict[str, tf.Tensor]) -> tf.Tensor:
        joined = tf.concat([self.user(features["user_id"]), self.title(features["movie_title"])], 1)
        return self.head(joined)

    def compute_loss(self, features, training: bool = False) -> tf.Tensor:
        return self.task(
            labels=features["click"][:, None],
            predictions=self(features),
            sample_weight=features.get("weight"),
        )


def clicks(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`user_id`, `movie_title`, `click` (rating >= 4) of MovieLens ratings."""
    return dataset.map(
        lambda x: {
            "user_id": x["user_id"],
            "movie_title": x["movie_title"],
            "click": tf.cast(x["user_rating"] >= 4.0, tf.float32),
        }
    )


def predict(model: Ranker, test: tf.data.Dataset) -> np.ndarray:
    return np.concatenate([model(batch).numpy()[:, 0] for batch in test])


def scores(probabilities: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    return {
        "log_loss": float(log_loss(probabilities, labels)),
        "ece": float(expected_calibration_error(probabilities, labels)),
        "mean_predicted": float(probabilities.mean()),
        "click_rate": float(labels.mean()),
    }


def run(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--movielens_dir", default=None, help="unzipped ml-100k; default tfds")
    parser.add_argument("--rate", type=float, default=0.1, help="keep rate of negatives")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    ratings, source = load_movielens(movielens_dir=args.movielens_dir)
    log = clicks(ratings).shuffle(200_000, seed=42, reshuffle_each_iteration=False)
    size = int(log.cardinality().numpy()) if log.cardinality() >= 0 else sum(1 for _ in log)
    train, test = log.take(int(0.8 * size)).cache(), log.skip(int(0.8 * size)).cache()
    users = np.unique([x["user_id"] for x in train.as_numpy_iterator()])
    titles = np.unique([x["movie_title"] for x in train.as_numpy_iterator()])
    labels = np.array([x["click"] for x in test.as_numpy_iterator()])
    tf.keras.utils.set_random_seed(0)
    initial = Ranker(users, titles)
    initial(next(iter(train.batch(2))))
    weights = initial.get_weights()
    train_sets = {
        "full": train,
        "subsampled": subsample_negatives(train, args.rate, "click", seed=1),
        "weighted": subsample_negatives(train, args.rate, "click", seed=1, weight_key="weight"),
    }
    results, correct = {}, PriorCorrection(args.rate)
    for name, data in train_sets.items():
        model = Ranker(users, titles)
        model(next(iter(train.batch(2))))
        model.set_weights(weights)
        model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
        model.fit(data.batch(args.batch_size), epochs=args.epochs, verbose=0)
        predicted = predict(model, test.batch(8192))
        results[name] = scores(predicted, labels)
        if name == "subsampled":
            corrected = correct(tf.constant(predicted)).numpy()
            results["prior_corrected"] = scores(corrected, labels)
    print(f"{source}, negatives kept at rate {args.rate}")
    print(f"{'run':16s} {'log-loss':>9s} {'ECE':>7s} {'mean p':>7s} {'clicks':>7s}")
    for name in RUNS:
        row = results[name]
        print(f"{name:16s} {row['log_loss']:9.4f} {row['ece']:7.4f} {row['mean_predicted']:7.4f} "
              f"{row['click_rate']:7.4f}")  # fmt: skip
    if args.output_json:
        write_json(args.output_json, {"source": source, "rate": args.rate}, results)
    return results


if __name__ == "__main__":
    main(run)
