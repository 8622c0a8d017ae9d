"""The chief of `tests/test_multi_worker.py`'s ParameterServerStrategy cluster (a script the
test starts; pytest does not collect it): `python parameter_server_job.py OUT NUM_WORKERS`.

It starts `NUM_WORKERS` workers and one parameter server in this process (`tf.distribute.Server`
on 127.0.0.1; TF cannot stop in-process servers, hence a process of their own) and, as the
coordinator, (1) fits a task with `cross_replica_negatives=True` and records the ValueError,
(2) fits the seeded model of `distributed_support` with the default task for two epochs of
`weighted_log()`. It writes OUT (.npz): the error, the weights and estimator state, the
estimator's example count and Keras' losses.
"""

import os
import socket
import sys

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow loads)

import numpy as np
import tensorflow as tf
from distributed_support import WeightedTwoTower, logq_task, trained_state, weighted_log

STEPS_PER_EPOCH = 4  # the batches of `weighted_log()`: 64, 64, 64 and 58 examples


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _in_process_cluster(num_workers):
    """Starts the workers and one ps here; returns their resolver (and the servers)."""
    ports = [f"127.0.0.1:{port}" for port in _free_ports(num_workers + 1)]
    spec = tf.train.ClusterSpec({"worker": ports[:num_workers], "ps": ports[num_workers:]})
    # A worker needs an inter-op thread per peer, or the cluster may hang (as in TF's tests).
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=num_workers + 1)
    servers = [
        tf.distribute.Server(spec, "worker", task_index=i, config=config, protocol="grpc")
        for i in range(num_workers)
    ]
    servers.append(tf.distribute.Server(spec, "ps", task_index=0, protocol="grpc"))
    return tf.distribute.cluster_resolver.SimpleClusterResolver(spec, rpc_layer="grpc"), servers


def _fit(strategy, task, epochs):
    with strategy.scope():
        model = WeightedTwoTower(task)
        model.compile(optimizer=tf.keras.optimizers.SGD(0.02))
    # Every worker reads the whole log, in order: with one worker the steps are the
    # one-device steps on `weighted_log()`.
    data = tf.keras.utils.experimental.DatasetCreator(lambda context: weighted_log().repeat())
    history = model.fit(data, epochs=epochs, steps_per_epoch=STEPS_PER_EPOCH, verbose=0)
    return model, history.history["loss"]


def main(out, num_workers):
    resolver, _servers = _in_process_cluster(num_workers)
    strategy = tf.distribute.experimental.ParameterServerStrategy(resolver)
    arrays = {"strategy": np.array(type(strategy).__name__)}
    try:
        _fit(strategy, logq_task(cross_replica_negatives=True), epochs=1)
        arrays["error"] = np.array("")
    except ValueError as error:
        arrays["error"] = np.array(str(error))
    model, losses = _fit(strategy, logq_task(), epochs=2)
    arrays.update(trained_state(model))
    arrays["examples_seen"] = model.task.frequency.examples_seen.numpy()
    arrays["losses"] = np.array(losses)
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # in-process servers cannot be stopped: leave without TF's teardown
