"""Mixed negatives in training: tf.function, mixed precision, MirroredStrategy."""

import subprocess
import sys
import textwrap

import tfrs_negatives as tfn
from tfrs_negatives.negatives import InBatch, Popularity, Uniform

import numpy as np
import tensorflow as tf
from tests_support import NUM_ITEMS, TwoTower, interactions


def _task(seed=0):
    counts = np.arange(NUM_ITEMS, 0, -1)
    return tfn.CorrectedRetrieval(
        frequency=tfn.StreamingFrequencyEstimator(num_buckets=256),
        negatives=[
            InBatch(),
            Uniform(np.arange(NUM_ITEMS), 16, seed=seed),
            Popularity(np.arange(NUM_ITEMS), 8, power=0.75, counts=counts, seed=seed + 1),
        ],
    )


def test_trains_and_resumes_identically_from_a_checkpoint(tmp_path):
    tf.keras.utils.set_random_seed(0)
    model = TwoTower(_task())
    model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    history = model.fit(interactions(), epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < history[0]
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    batch = next(iter(interactions(seed=5)))
    continued = model.train_step(batch)["loss"].numpy()

    tf.keras.utils.set_random_seed(1)
    fresh = TwoTower(_task(seed=7))
    fresh.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    fresh.train_step(next(iter(interactions(seed=9))))  # create every variable, then overwrite
    tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(path)
    # The same next step: same weights, estimator state and sampler streams.
    np.testing.assert_allclose(fresh.train_step(batch)["loss"].numpy(), continued, rtol=1e-6)


def test_mixed_precision_with_sources():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = TwoTower(_task())
        model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
        history = model.fit(interactions(), epochs=2, verbose=0).history["loss"]
        assert np.all(np.isfinite(history))
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")


_MIRRORED = textwrap.dedent(
    """
    import json
    import numpy as np
    import tfrs_negatives as tfn
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys_path_test = __import__("sys").argv[1]
    __import__("sys").path.insert(0, sys_path_test)
    from test_mixed_training import _task
    from tests_support import TwoTower, interactions
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = TwoTower(_task())
        model.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
    losses = model.fit(interactions(), epochs=2, verbose=0).history["loss"]
    est = model.task.frequency
    replicas = [v.numpy().tolist() for v in strategy.experimental_local_results(est.gap)]
    print(json.dumps({"losses": losses, "seen": int(est.examples_seen.numpy()),
                      "replicas_equal": replicas[0] == replicas[1], "gap": replicas[0]}))
    """
)


def test_mirrored_strategy_on_two_cpus(tmp_path):
    import json
    import pathlib

    tests_dir = str(pathlib.Path(__file__).parent)
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED, tests_dir],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert np.all(np.isfinite(out["losses"]))
    assert out["seen"] == 2 * 256 and out["replicas_equal"]
    # The estimator saw the global batches: same state as counting them in one process.
    est = tfn.StreamingFrequencyEstimator(num_buckets=256)
    for _ in range(2):
        for batch in interactions():
            est(batch["item"], training=True)
    np.testing.assert_allclose(out["gap"], est.gap.numpy(), rtol=1e-6)
