"""Statistical checks: corrected mixed negatives estimate the full-softmax gradient and
recover known item scores; uncorrected in-batch negatives do not."""

import pathlib

import pytest
from tests_support import load_script

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "mixed_unbiasedness.py"


@pytest.fixture(scope="module")
def experiment():
    return load_script(SCRIPT, "mixed_unbiasedness")


@pytest.fixture(scope="module")
def theta(experiment):
    return experiment.true_logits(120, seed=0)


def sampling(experiment):
    """Batch 128, 128 uniform negatives, seed 0."""
    return experiment.Sampling(batch=128, negatives=128, seed=0)


def test_expected_gradient_matches_full_softmax(experiment, theta):
    def error(mix):
        return experiment.expected_gradient_error(mix, theta, sampling(experiment), draws=150)

    full = error("full")  # noise floor: positives are sampled too
    corrected = error("mixed_logq")
    uncorrected = error("inbatch_plain")
    assert full < 0.1
    assert corrected < 2 * full + 0.03
    assert uncorrected > 10 * corrected


def test_corrected_mixed_recovers_true_scores(experiment, theta):
    corrected = experiment.recovery("mixed_logq", theta, sampling(experiment), steps=250)
    uncorrected = experiment.recovery("inbatch_plain", theta, sampling(experiment), steps=250)
    assert corrected >= 0.9
    assert uncorrected < 0.5
