"""`--distribution`: the flags' checks, the strategies they make, and the compare command
and the examples trained under them (4 logical CPUs in this process, 2 in a child)."""

import argparse
import json
import os
import subprocess
import sys

from tfrs_negatives.experiments import compare, distribution

import numpy as np
import pytest
import tensorflow as tf
from conftest import NUM_LOGICAL_CPUS
from tests_support import TINY_SYNTHETIC


def _flags(*argv):
    parser = argparse.ArgumentParser()
    distribution.add_distribution_flags(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cpu_devices", "2"], "--cpu_devices 2 splits the CPU into replicas of"),
        (["--distribution", "one_device", "--cpu_devices", "2"], "is 'one_device'"),
        (["--cpu_devices", "-1", "--distribution", "mirrored"], "must be >= 0, got -1"),
        (["--per_replica_negatives"], "--per_replica_negatives needs several replicas"),
        (["--distribution", "one_device", "--per_replica_negatives"], "is 'one_device'"),
    ],
)
def test_flags_that_would_be_ignored_are_errors(argv, message):
    with pytest.raises(ValueError, match=message):
        distribution.strategy_from_flags(_flags(*argv))


def test_multi_worker_without_tf_config_names_the_variable(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the cluster in the TF_CONFIG environment"):
        distribution.strategy_from_flags(_flags("--distribution", "multi_worker"))


def test_strategies_of_the_flags():
    assert distribution.strategy_from_flags(_flags()) is None
    one = distribution.strategy_from_flags(_flags("--distribution", "one_device"))
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    mirrored = distribution.strategy_from_flags(_flags("--distribution", "mirrored"))
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert mirrored.num_replicas_in_sync == NUM_LOGICAL_CPUS  # every logical CPU
    # The CPU is already split 4 ways: asking for 4 again is fine, another split is not.
    again = _flags("--distribution", "mirrored", "--cpu_devices", str(NUM_LOGICAL_CPUS))
    assert distribution.strategy_from_flags(again).num_replicas_in_sync == NUM_LOGICAL_CPUS
    with pytest.raises(ValueError, match="already started with 4 CPU device"):
        distribution.strategy_from_flags(_flags("--distribution", "mirrored", "--cpu_devices", "2"))
    args = _flags("--distribution", "mirrored", "--per_replica_negatives")
    assert distribution.describe(mirrored, args) == (
        "MirroredStrategy, 4 replicas, per-replica in-batch negatives"
    )
    assert distribution.task_options(args) == {"cross_replica_negatives": False}
    assert distribution.task_options(_flags("--distribution", "mirrored")) == {}
    assert distribution.is_chief(None) and distribution.is_chief(mirrored)


def _compare(tmp_path, name, *flags):
    """`compare.run` on the tiny synthetic log into `tmp_path/name`: `(results, JSON)`.

    Each run's strategy takes its own collective keys (see conftest): two strategies
    reusing keys in one process would meet in the same collective instances."""
    tf.distribute.MirroredStrategy._collective_key_base += 10_000
    out = tmp_path / name
    # One epoch: the equality with one device holds at every step (and two cost 2x here).
    results = compare.run([*TINY_SYNTHETIC, "--epochs", "1", "--output_dir", str(out), *flags])
    saved = json.loads((out / "results.json").read_text())
    return results, saved


def _same_training(a, b):
    """logq trains exactly as one device; mixed's replicas draw their own uniform
    negatives (the same distribution, other draws), so only its recall is close."""
    for name in a:
        for key in ("recall@10", "recall@50", "head_recall@50", "tail_recall@50"):
            tolerance = 0.011 if name == "logq" else 0.05
            assert a[name][key] == pytest.approx(b[name][key], abs=tolerance), (name, key)
    assert a["logq"]["final_loss"] == pytest.approx(b["logq"]["final_loss"], rel=1e-4, abs=1e-5)


def _diagnostics_close(a, b):
    """The per-source diagnostics, averaged over replicas, are finite and close to one
    device's (replicas measure other rows of the batch: close, not equal)."""
    for name in a:
        for source, statistics in a[name].diagnostics.items():
            for statistic, value in statistics.items():
                other = b[name].diagnostics[source][statistic]
                assert np.isfinite(other), (name, source, statistic)
                if statistic in ("mass", "masked"):
                    assert other == pytest.approx(value, abs=0.08), (name, source, statistic)


def test_compare_under_mirrored_equals_one_device_and_per_replica_differs(tmp_path):
    # logq only: mixed sources under MirroredStrategy are checked in test_distributed.py
    # (every source trains as one device); the command's part is the same for both.
    plain, _ = _compare(tmp_path, "none", "--strategies", "logq")
    mirrored, saved = _compare(
        tmp_path, "mirrored", "--distribution", "mirrored", "--strategies", "logq"
    )
    assert saved["distribution"] == "MirroredStrategy, 4 replicas, global in-batch negatives"
    assert saved["arguments"]["distribution"] == "mirrored"
    metrics = {name: result.metrics for name, result in plain.items()}
    _same_training(metrics, {name: result.metrics for name, result in mirrored.items()})
    _diagnostics_close(plain, mirrored)
    per_replica, saved = _compare(
        tmp_path,
        "per_replica",
        *("--distribution", "mirrored", "--per_replica_negatives", "--strategies", "logq"),
    )
    assert set(plain) == set(mirrored) == {"logq"}
    assert saved["distribution"].endswith("per-replica in-batch negatives")
    # Each replica's softmax sees a quarter of the batch: easier rows, other updates.
    assert list(per_replica) == ["logq"]
    loss = [r["logq"].metrics["final_loss"] for r in (plain, per_replica)]
    assert loss[1] < 0.9 * loss[0], loss
    mass = [r["logq"].diagnostics["positive"]["mass"] for r in (plain, per_replica)]
    assert mass[1] > mass[0] + 0.01, mass


def test_the_command_splits_the_cpu_in_a_new_process(tmp_path):
    """`--cpu_devices 2` in a fresh process (this one is split already): 2 replicas, the
    same training as one device."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    argv = [*TINY_SYNTHETIC, "--epochs", "1", "--strategies", "logq"]
    argv += ["--output_dir", str(tmp_path / "two")]
    argv += ["--distribution", "mirrored", "--cpu_devices", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "tfrs_negatives", "compare", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distribution: MirroredStrategy, 2 replicas, global in-batch negatives" in done.stdout
    two = json.loads((tmp_path / "two" / "results.json").read_text())["results"]
    _, saved = _compare(tmp_path, "one", "--strategies", "logq")
    _same_training(saved["results"], two)


def test_usage_errors_of_the_command(capsys):
    code = compare.main([*TINY_SYNTHETIC, "--per_replica_negatives"])
    assert code == 2
    assert "--per_replica_negatives needs several replicas" in capsys.readouterr().err
