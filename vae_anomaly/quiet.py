"""TensorFlow's start-up and tracing chatter, kept off the command line's stderr.

Importing TensorFlow writes lines that users read as errors: oneDNN and CPU-feature
notes, "Could not find cuda drivers", and on the first operation "failed call to cuInit:
... CUDA error" on every machine without a GPU. ``TF_CPP_MIN_LOG_LEVEL=3`` silences what
TensorFlow's C++ log writes once it is set up, but not the lines written before
``absl::InitializeLog()`` (they start with "WARNING: All log messages before absl..." and
ignore the level), so those are sent to /dev/null for the duration of the import only.
TensorFlow's Python logger (tf.function retracing warnings) is lowered to errors.

The worker processes of ``--engine dask`` (a LocalCluster) import TensorFlow themselves
and write to the same stderr: ``dask_workers_quiet`` has each one preload this module,
whose ``dask_setup`` hook does the same there.

``vae-anomaly --verbose`` skips all of this; the Python API never calls it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# The Python loggers TensorFlow and Keras write their warnings to.
PYTHON_LOGGERS = ("tensorflow", "absl")


@contextlib.contextmanager
def stderr_discarded():
    """File descriptor 2 points at /dev/null inside the block, and back afterwards.

    The descriptor itself is redirected, not ``sys.stderr``: C++ code writes to it
    directly. A Python exception raised inside the block is reported after it.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without its start-up lines; lower its Python loggers to errors.

    ``TF_CPP_MIN_LOG_LEVEL`` is set to 3 (errors only) unless the user set it. The lines
    written during the import are discarded unless the user asked for TensorFlow's
    informational messages (``TF_CPP_MIN_LOG_LEVEL=0``). Call it before anything imports
    TensorFlow; afterwards the environment variable has no effect.
    """
    os.environ.setdefault(LOG_LEVEL_VARIABLE, "3")
    if "tensorflow" not in sys.modules:
        wanted = os.environ[LOG_LEVEL_VARIABLE].strip() == "0"
        with contextlib.nullcontext() if wanted else stderr_discarded():
            import tensorflow  # noqa: F401
    for name in PYTHON_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def dask_workers_quiet():
    """Dask workers started inside the block import TensorFlow quietly (through preload).

    Without Dask installed this does nothing: the engine itself says what to install.
    """
    try:
        import dask
    except ImportError:
        yield
        return
    preload = [*dask.config.get("distributed.worker.preload", []), __name__]
    with dask.config.set({"distributed.worker.preload": preload}):
        yield


def dask_setup(worker) -> None:
    """Dask's preload hook, run in each worker process before its first task."""
    import_tensorflow_quietly()
