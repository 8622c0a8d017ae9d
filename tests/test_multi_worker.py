"""Global negatives across processes: `MultiWorkerMirroredStrategy` over two worker processes
trains as one device on the global batch; `ParameterServerStrategy` rejects
`cross_replica_negatives=True` and trains per worker by default.

The clusters run in child processes on 127.0.0.1 (`multi_worker_job.py`,
`parameter_server_job.py`), each bounded by `DEADLINE_SECONDS` and killed afterwards. The
children do not load conftest: each has one CPU device.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow loads)
from tfrs_negatives.experiments import compare

import numpy as np
import pytest
import tensorflow as tf
from distributed_support import (
    WeightedTwoTower,
    assert_same_state,
    logq_task,
    trained,
    trained_state,
)
from tests_support import NUM_ITEMS, TINY_SYNTHETIC

TESTS = Path(__file__).resolve().parent
# A bound against hangs: an idle 2-core machine needs ~15 s per cluster, a loaded one 80 s.
DEADLINE_SECONDS = 180


def _free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _child_env(tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]),
        CUDA_VISIBLE_DEVICES="",
    )
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _run(commands, logs, deadline=None):
    """Runs `[(argv, env)]` together until all exit, one fails or `deadline` passes (a
    `time.monotonic()`; default `DEADLINE_SECONDS` from now), and kills what is left.
    Raises AssertionError with every child's output unless all exit 0."""
    processes = []
    try:
        for (argv, env), log in zip(commands, logs):
            with open(log, "wb") as out:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, *argv], env=env, stdout=out, stderr=subprocess.STDOUT
                    )
                )
        if deadline is None:
            deadline = time.monotonic() + DEADLINE_SECONDS
        # A failed worker leaves its peers waiting in a collective: stop at once.
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            if any(p.returncode not in (None, 0) for p in processes):
                break
            time.sleep(0.2)
        status = [_status(p.returncode, deadline) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
    if status != ["exit 0"] * len(commands):
        outputs = "\n".join(
            f"--- {log} ({state})\n" + Path(log).read_text(errors="replace")[-6000:]
            for log, state in zip(logs, status)
        )
        raise AssertionError(f"a child process failed:\n{outputs}")


def _status(code, deadline):
    if code is not None:
        return f"exit {code}"
    if time.monotonic() >= deadline:
        return "killed: still running at the deadline"
    return "killed: still running when another child failed"


@pytest.fixture(scope="module")
def multi_worker(tmp_path_factory):
    """Both workers' `multi_worker_job.py` results: `[worker0, worker1]` dicts of arrays."""
    out = tmp_path_factory.mktemp("multi_worker")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    commands = [
        (
            [str(TESTS / "multi_worker_job.py"), str(out)],
            _child_env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]
    _run(commands, [out / f"worker{i}.log" for i in range(2)])
    return [dict(np.load(out / f"worker{i}.npz")) for i in range(2)]


@pytest.fixture(scope="module")
def one_device():
    """`(state, losses)` of the seeded model trained on one device (`trained`)."""
    model, losses = trained(tf.distribute.get_strategy(), logq_task)
    return trained_state(model), losses


def _run_state(arrays, run):
    return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{run}/")}


def test_two_workers_train_as_one_device(multi_worker, one_device):
    first, second = multi_worker
    assert int(first["num_replicas"]) == 2
    assert int(first["local_replicas"]) == 1 and int(first["local_cpus"]) == 1
    for key in first:  # the workers hold the same mirrored state
        np.testing.assert_array_equal(second[key], first[key], err_msg=key)
    state, losses = one_device
    assert_same_state(_run_state(first, "global"), state)
    np.testing.assert_allclose(first["global/losses"], losses, rtol=1e-5)
    initial = WeightedTwoTower(None).item_tower(tf.range(NUM_ITEMS)).numpy()
    assert np.abs(state["item"] - initial).max() > 1e-2  # the steps did move


def test_per_replica_negatives_across_workers_differ_from_one_device(multi_worker, one_device):
    local = _run_state(multi_worker[0], "local")
    state, losses = one_device
    # The estimator counts the global batch either way; the scores see half of it.
    assert_same_state(local, {k: state[k] for k in ("gap", "occurrences")})
    for key in ("query", "item"):
        gap = np.abs(local[key] - state[key]).max()
        assert gap > 1e-2 * np.abs(state[key]).max(), key
    assert np.all(np.abs(local["losses"] - np.array(losses)) > 1e-2 * np.abs(losses))


@pytest.fixture(scope="module")
def parameter_server(tmp_path_factory):
    """`parameter_server_job.py`'s results with 1 and with 2 workers: `{workers: arrays}`."""
    out = tmp_path_factory.mktemp("parameter_server")
    job = str(TESTS / "parameter_server_job.py")
    deadline = time.monotonic() + DEADLINE_SECONDS  # for both runs, one after the other
    for n in (1, 2):
        command = ([job, str(out / f"workers{n}.npz"), str(n)], _child_env())
        _run([command], [out / f"workers{n}.log"], deadline)
    return {n: dict(np.load(out / f"workers{n}.npz")) for n in (1, 2)}


@pytest.mark.parametrize("workers", [1, 2])
def test_parameter_server_rejects_cross_replica_negatives(parameter_server, workers):
    arrays = parameter_server[workers]
    assert "ParameterServerStrategy" in str(arrays["strategy"])
    error = str(arrays["error"])
    assert "`cross_replica_negatives=True` needs replicas that step together" in error
    assert "ParameterServerStrategy" in error and "asynchronously" in error


def test_parameter_server_one_worker_trains_as_one_device(parameter_server, one_device):
    # One worker takes the steps in order: each batch's own in-batch negatives, as one device.
    arrays = parameter_server[1]
    state, losses = one_device
    assert_same_state(arrays, state)
    np.testing.assert_allclose(arrays["losses"], losses, rtol=1e-5)


def test_parameter_server_two_workers_train(parameter_server, one_device):
    # The workers step asynchronously: no equality to expect, but finite progress and
    # every example counted once by the estimator (its clock is an atomic add).
    arrays = parameter_server[2]
    assert np.all(np.isfinite(arrays["losses"]))
    assert int(arrays["examples_seen"]) == 2 * 250
    initial = WeightedTwoTower(None).item_tower(tf.range(NUM_ITEMS)).numpy()
    assert np.abs(arrays["item"] - initial).max() > 1e-2
    assert all(np.all(np.isfinite(arrays[k])) for k in one_device[0])


def test_compare_command_across_two_workers(tmp_path):
    """`tfrs-negatives compare --distribution multi_worker` in two processes: the chief
    alone writes the outputs, log-Q trains as on one device, and the diagnostics are
    the one-device figures (not multiplied by the workers, as Keras' logs would be)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    argv = ["-m", "tfrs_negatives", "compare", *TINY_SYNTHETIC, "--distribution", "multi_worker"]
    commands = [
        (
            [*argv, "--output_dir", str(tmp_path / f"worker{i}")],
            _child_env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]
    _run(commands, [tmp_path / f"worker{i}.log" for i in range(2)])
    assert not list((tmp_path / "worker1").iterdir())  # created and checked, not written
    assert "this worker is not the chief" in (tmp_path / "worker1.log").read_text()
    workers = json.loads((tmp_path / "worker0" / "results.json").read_text())
    assert workers["distribution"] == (
        "MultiWorkerMirroredStrategy, 2 replicas, global in-batch negatives"
    )
    one = compare.run([*TINY_SYNTHETIC, "--output_dir", str(tmp_path / "one")])["logq"]
    logq = workers["results"]["logq"]
    for key in ("recall@10", "recall@50", "final_loss"):
        assert logq[key] == pytest.approx(one.metrics[key], rel=1e-4, abs=1e-6), key
    diagnostics = logq["negative_diagnostics"]["in_batch"]
    assert diagnostics["distinct"] == pytest.approx(one.diagnostics["in_batch"]["distinct"])
    assert diagnostics["masked"] == pytest.approx(one.diagnostics["in_batch"]["masked"], abs=0.01)
