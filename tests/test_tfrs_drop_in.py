"""Drop-in: TFRS's own retrieval tests, run unchanged against `CorrectedRetrieval`.

The test module `tensorflow_recommenders/tasks/retrieval_test.py` ships inside the
installed TFRS package. It is loaded from site-packages at test time and its
`retrieval.Retrieval` is pointed at `CorrectedRetrieval`; nothing of TFRS is copied.
"""

import functools
import importlib.util
import os
import types
import unittest

import tfrs_negatives as tfn

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs
from tests_support import NUM_ITEMS, NUM_USERS, interactions

TFRS_TEST = os.path.join(os.path.dirname(tfrs.tasks.__file__), "retrieval_test.py")


def _run_tfrs_tests(task_class) -> unittest.TestResult:
    """Runs TFRS's retrieval tests with `retrieval.Retrieval` replaced by `task_class`."""
    spec = importlib.util.spec_from_file_location("tfrs_retrieval_test", TFRS_TEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.retrieval = types.SimpleNamespace(Retrieval=task_class)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    result = unittest.TestResult()
    suite.run(result)
    return result


def _failures(result: unittest.TestResult) -> list:
    return [str(test) for test, _ in result.failures + result.errors]


def test_tfrs_retrieval_tests_pass_against_corrected_retrieval():
    assert os.path.exists(TFRS_TEST), f"TFRS's test module is missing: {TFRS_TEST}"
    result = _run_tfrs_tests(tfn.CorrectedRetrieval)
    assert _failures(result) == []
    # test_task (x3 classes), test_task_graph, and tf.test.TestCase's test_session (x3).
    assert result.testsRun == 7


def test_tfrs_retrieval_tests_see_a_difference_when_there_is_one():
    # The harness can fail: forced diagnostics add metrics TFRS's tests do not expect.
    noisy = functools.partial(tfn.CorrectedRetrieval, diagnostics=True)
    assert len(_failures(_run_tfrs_tests(noisy))) >= 3


class TutorialModel(tfrs.Model):
    """The TFRS tutorial's model: the task gets only the two towers' embeddings."""

    def __init__(self, task):
        super().__init__()
        self.query_tower = tf.keras.layers.Embedding(NUM_USERS, 8)
        self.item_tower = tf.keras.layers.Embedding(NUM_ITEMS, 8)
        self.task = task

    def compute_loss(self, features, training=False):
        return self.task(self.query_tower(features["user"]), self.item_tower(features["item"]))


def _fit(task, seed=0):
    tf.keras.utils.set_random_seed(seed)
    model = TutorialModel(task)
    model.compile(tf.keras.optimizers.SGD(0.1))
    history = model.fit(interactions(seed), epochs=2, verbose=0)
    return model, history


def test_fit_logs_and_metric_names_equal_tfrs():
    batch = [tf.keras.metrics.TopKCategoricalAccuracy(k=1, name="top1")]
    ours, our_history = _fit(tfn.CorrectedRetrieval(batch_metrics=batch))
    batch = [tf.keras.metrics.TopKCategoricalAccuracy(k=1, name="top1")]
    theirs, their_history = _fit(tfrs.tasks.Retrieval(batch_metrics=batch))
    assert ours.metrics_names == theirs.metrics_names
    assert [m.name for m in ours.task.metrics] == [m.name for m in theirs.task.metrics]
    assert our_history.history.keys() == their_history.history.keys()
    for key in their_history.history:
        np.testing.assert_allclose(
            our_history.history[key], their_history.history[key], rtol=1e-4, err_msg=key
        )


@pytest.mark.parametrize(
    "kwargs, on",
    [
        (dict(), False),
        (dict(negatives=[tfn.negatives.InBatch()]), False),
        (dict(remove_accidental_hits=True, temperature=0.5), False),
        (dict(frequency=tfn.StreamingFrequencyEstimator(num_buckets=64)), True),
        (dict(negatives=[tfn.negatives.Uniform(np.arange(10), 4)]), True),
        (dict(diagnostics=True), True),
        (dict(negatives=[tfn.negatives.Uniform(np.arange(10), 4)], diagnostics=False), False),
    ],
)
def test_diagnostics_switch_on_only_for_what_tfrs_lacks(kwargs, on):
    task = tfn.CorrectedRetrieval(**kwargs)
    assert task.diagnostics is on
    names = [m.name for m in task.metrics]
    assert any(name.startswith("negatives/") for name in names) is on
    again = tfn.CorrectedRetrieval.from_config(task.get_config())
    assert again.diagnostics is on
    assert again.get_config() == task.get_config()
