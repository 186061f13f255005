"""The ``tf.distribute`` strategy a fit job trains under: ``[training] strategy`` or
``vae-anomaly fit --strategy``.

    default       no strategy: one device (TensorFlow's default placement)
    mirrored      tf.distribute.MirroredStrategy(): one replica per local GPU, weights
                  mirrored and gradients all-reduced; on a machine without a GPU it falls
                  back to one replica on the CPU (the same training as "default")
    multi-worker  tf.distribute.MultiWorkerMirroredStrategy(): every local GPU (or the
                  CPU) of every worker of the cluster that the TF_CONFIG environment
                  variable describes, as TensorFlow documents it; each worker runs the
                  same command on the same inputs

Importing this module imports no TensorFlow (``--help`` stays fast); ``make_strategy``
does.
"""

from __future__ import annotations

import json
import os

STRATEGIES = ("default", "mirrored", "multi-worker")


def check_tf_config() -> dict:
    """The parsed TF_CONFIG, or a ValueError saying what multi-worker training needs."""
    text = os.environ.get("TF_CONFIG")
    example = (
        'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}\''
    )
    if not text:
        raise ValueError(
            "--strategy multi-worker needs the TF_CONFIG environment variable, which names "
            f"the cluster's workers and this one's place among them, e.g. {example}."
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {text!r}.") from None
    workers = config.get("cluster", {}).get("worker") if isinstance(config, dict) else None
    task = config.get("task", {}) if isinstance(config, dict) else {}
    if not workers or not isinstance(task, dict) or "index" not in task:
        raise ValueError(
            "TF_CONFIG must name the workers (cluster.worker) and this task "
            f"(task.type, task.index), e.g. {example}; got {text!r}."
        )
    return config


def make_strategy(name: str):
    """The strategy called ``name`` (one of STRATEGIES). Multi-worker collectives must be
    set up before TensorFlow runs anything, so a job makes its strategy first."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}.")
    if name == "multi-worker":
        check_tf_config()
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()
