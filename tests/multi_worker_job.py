"""One worker of `tests/test_multi_worker.py` (a script the test starts; pytest does not
collect it): `python multi_worker_job.py OUT_DIR` with `TF_CONFIG` set.

Under `MultiWorkerMirroredStrategy` (one CPU replica per worker) it trains the seeded
model of `distributed_support` for two epochs of `weighted_log()`, with global negatives
(the default) and then with per-replica negatives, and writes `worker<i>.npz` to OUT_DIR:
the weights, estimator state and Keras' losses of each run (`global/...`, `local/...`),
the number of replicas (global, this worker's) and of this worker's CPU devices.
"""

import json
import os
import sys

import tfrs_negatives  # noqa: F401  (Keras 2 before TensorFlow loads)

import numpy as np
import tensorflow as tf
from distributed_support import logq_task, trained, trained_state, weighted_log


def _sharded_log():
    """`weighted_log()`, sharded by element: Keras splits each global batch of 64 into one
    slice per replica (in order), and each worker keeps its own slice."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return weighted_log().with_options(options)


def _own_cpus(task_index):
    """This worker's logical CPUs (the cluster's other workers' are listed too)."""
    devices = tf.config.list_logical_devices("CPU")
    return [d for d in devices if f"/task:{task_index}/" in d.name]


def main(out_dir):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task_index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    arrays = {
        "num_replicas": np.array(strategy.num_replicas_in_sync),
        "local_replicas": np.array(len(strategy.extended.worker_devices)),
        "local_cpus": np.array(len(_own_cpus(task_index))),
    }
    for name, cross_replica in (("global", None), ("local", False)):
        model, losses = trained(
            strategy,
            lambda c=cross_replica: logq_task(cross_replica_negatives=c),
            dataset=_sharded_log(),
        )
        arrays.update({f"{name}/{k}": v for k, v in trained_state(model).items()})
        arrays[f"{name}/losses"] = np.array(losses)
    np.savez(os.path.join(out_dir, f"worker{task_index}.npz"), **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip TF's teardown of the collective runtime (it can stall at exit)
