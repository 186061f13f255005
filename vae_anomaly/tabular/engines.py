"""Where chunks are scored: in this process (``local``) or on a Dask cluster (``dask``).

The local engine is a pipeline (``run_pipeline``): while two chunks are scored at once,
the chunks after them are read and encoded in one thread and the one before them written
in another, so at most five chunks are in memory at once. Arrow, NumPy and TensorFlow
release the GIL for their work, so the steps share the cores.

The Dask engine sends each chunk task to a worker, which reads its chunk from the file
and writes its part files itself, so the files must be on storage every worker sees
(any path works for a ``LocalCluster``). Each worker process loads the model once.
Without ``scheduler``, a ``distributed.LocalCluster`` is started for the run.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

ENGINES = ("local", "dask")


def run_tasks(
    function: Callable[[dict], dict],
    tasks: list[dict],
    engine: str = "local",
    scheduler: str | None = None,
) -> Iterator[dict]:
    """Run ``function`` on every task; yield each result as it finishes."""
    if engine == "local":
        for task in tasks:
            yield function(task)
        return
    if engine != "dask":
        raise ValueError(f"--engine must be one of {ENGINES}, got {engine!r}.")
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as error:
        raise ImportError(
            "--engine dask needs Dask's distributed scheduler: pip install 'vae-anomaly[dask]'."
        ) from error
    if not tasks:
        return
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(scheduler or cluster)
    try:
        futures = client.map(function, tasks, pure=False)
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class _Stopped(Exception):
    """A pipeline step skipped because an earlier step failed."""


def run_pipeline(
    tasks: list[dict],
    prepare: Callable[[dict], dict],
    compute: Callable[[dict], dict],
    commit: Callable[[dict], dict],
    compute_threads: int = 2,
) -> Iterator[dict]:
    """``commit(compute(prepare(task)))`` for every task, overlapped, in task order.

    ``prepare`` runs in one thread, ``compute`` in ``compute_threads`` threads (two chunks
    scored at once keep both cores busy while the model waits on a core:
    ``benchmarks/README.md``, streaming run F), and ``commit`` in one thread, in task
    order. At most ``compute_threads + 3`` tasks are alive at once (prepared and not yet
    yielded), so memory stays bounded. Yields each commit's result in task order, one
    commit behind the newest. The first exception in any step is raised here: every
    step not yet started is skipped, those running are waited for, and no thread
    outlives the generator.
    """
    if compute_threads < 1:
        raise ValueError(f"compute_threads must be at least 1, got {compute_threads}.")
    errors: list[BaseException] = []  # the first error of any step, in time
    lock = threading.Lock()

    def guarded(step: Callable[[dict], dict]) -> Callable[[dict], dict]:
        def run(item: dict) -> dict:
            if errors:
                raise _Stopped
            try:
                return step(item)
            except BaseException as error:
                with lock:
                    errors.append(error)
                raise

        return run

    def result(future):
        try:
            return future.result()
        except BaseException as error:
            raise (errors[0] if errors else error) from None

    prepare, compute, commit = guarded(prepare), guarded(compute), guarded(commit)
    pools = [
        ThreadPoolExecutor(1, thread_name_prefix="chunk-prepare"),
        ThreadPoolExecutor(compute_threads, thread_name_prefix="chunk-compute"),
        ThreadPoolExecutor(1, thread_name_prefix="chunk-commit"),
    ]
    preparing, computing, committing = deque(), deque(), deque()

    def advance(final: bool) -> Iterator[dict]:
        while preparing and (final or len(preparing) > 1):
            computing.append(pools[1].submit(compute, result(preparing.popleft())))
            while len(computing) > (0 if final else compute_threads):
                committing.append(pools[2].submit(commit, result(computing.popleft())))
        while committing and (final or len(committing) > 1):
            yield result(committing.popleft())
        if errors:  # a step failed whose future is not yet waited for
            raise errors[0]

    try:
        for task in tasks:
            preparing.append(pools[0].submit(prepare, task))
            yield from advance(final=False)
        yield from advance(final=True)
    finally:
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
