"""Negative subsampling for a ranker: calibration without, with PriorCorrection, with weights.

A synthetic impression log with a known click probability per example: features
`x ~ N(0, I_d)`, true logit `w.x + b` with `b` set so the base rate is about 3%. A logistic
model (`Dense(1)` on the features, Adam) is trained on

  (a) the full log,
  (b) negatives subsampled at `rate` (`subsample_negatives`), no correction,
  (c) the same subsample, outputs through `PriorCorrection(rate)`,
  (d) the same subsample with importance weights `1 / rate` on negatives,

for each rate in `--rates`; log-loss, ECE (10 equal-width bins) and the mean predicted CTR
are measured on a held-out log against its sampled clicks (the true-probability row is the
floor). Then the calibrators: `PlattCalibration` and `IsotonicCalibration` fitted on a
held-out calibration split to the uncorrected model's logits at the smallest rate, ECE
before and after on the test split.

Usage:
    python benchmarks/ranking_subsampling.py
    python benchmarks/ranking_subsampling.py --num_train 400000 --rates 0.5 0.1 0.01
"""

import argparse
import time

import tfrs_negatives  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TF loads)
from tfrs_negatives.ranking import (
    IsotonicCalibration,
    PlattCalibration,
    PriorCorrection,
    expected_calibration_error,
    log_loss,
    subsample_negatives,
)

import numpy as np
import tensorflow as tf


def make_log(n: int, weights: np.ndarray, bias: float, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, weights.size)).astype(np.float32)
    p = 1 / (1 + np.exp(-(x @ weights + bias)))
    return x, (rng.random(n) < p).astype(np.float32), p


def train(ds: tf.data.Dataset, dim: int, epochs: int, seed: int) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([tf.keras.Input([dim]), tf.keras.layers.Dense(1)])
    model.compile(tf.keras.optimizers.Adam(0.05), tf.keras.losses.BinaryCrossentropy(True))
    model.fit(ds, epochs=epochs, verbose=0)
    return model


def dataset(log, rate, seed, weighted, batch_size):
    """The `(x, y)` log as batches of `(x, click[, weight])`, negatives kept at `rate`."""
    ds = tf.data.Dataset.from_tensor_slices({"x": log[0], "click": log[1]})
    if rate < 1:
        ds = subsample_negatives(ds, rate, "click", seed=seed, weight_key="w" if weighted else None)
    if weighted:
        ds = ds.map(lambda e: (e["x"], e["click"], e["w"]))
    else:
        ds = ds.map(lambda e: (e["x"], e["click"]))
    return ds.shuffle(100_000, seed=seed).batch(batch_size).cache()


def row(name, p, y):
    ll, ece = log_loss(p, y), expected_calibration_error(p, y)
    print(f"| {name} | {ll:.4f} | {ece:.4f} | {np.mean(p):.4f} |")


def logits_of(model, x):
    return model.predict(x, batch_size=8192, verbose=0)[:, 0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_train", type=int, default=200_000)
    parser.add_argument("--num_test", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.5, 0.1, 0.01])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.time()
    weights = np.random.default_rng(args.seed).normal(0, 0.5, args.dim)
    bias = -3.85  # base rate ~3% with these weights (printed)
    x, y, _ = make_log(args.num_train, weights, bias, args.seed + 1)
    xt, yt, pt = make_log(args.num_test, weights, bias, args.seed + 2)
    xc, yc, _ = make_log(args.num_test, weights, bias, args.seed + 3)
    print(
        f"train {args.num_train} (base rate {y.mean():.4f}), test {args.num_test} "
        f"(base rate {yt.mean():.4f})\n"
    )
    print("| training | log-loss | ECE | mean predicted CTR |")
    print("|---|---|---|---|")
    row("true probability (floor)", pt, yt)
    full = train(dataset((x, y), 1.0, args.seed, False, args.batch_size), args.dim, args.epochs, 0)
    row("(a) full log", tf.sigmoid(logits_of(full, xt)).numpy(), yt)
    uncorrected_logits = None
    for rate in args.rates:
        model = train(
            dataset((x, y), rate, args.seed, False, args.batch_size), args.dim, args.epochs, 0
        )
        p = tf.sigmoid(logits_of(model, xt))
        row(f"(b) rate {rate}, uncorrected", p.numpy(), yt)
        row(f"(c) rate {rate}, PriorCorrection", PriorCorrection(rate)(p).numpy(), yt)
        weighted = train(
            dataset((x, y), rate, args.seed, True, args.batch_size), args.dim, args.epochs, 0
        )
        row(f"(d) rate {rate}, importance weights", tf.sigmoid(logits_of(weighted, xt)).numpy(), yt)
        uncorrected_logits = (rate, logits_of(model, xc), logits_of(model, xt))
    rate, sc, st = uncorrected_logits
    print(
        f"\nCalibrators on the uncorrected rate-{rate} model's logits "
        f"(fitted on a held-out {args.num_test}-example split):\n"
    )
    print("| scores | log-loss | ECE | mean predicted CTR |")
    print("|---|---|---|---|")
    row("sigmoid(logit), before", tf.sigmoid(st).numpy(), yt)
    row("PlattCalibration", PlattCalibration.fit(sc, yc)(tf.constant(st)).numpy(), yt)
    row("IsotonicCalibration", IsotonicCalibration.fit(sc, yc)(tf.constant(st)).numpy(), yt)
    print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
