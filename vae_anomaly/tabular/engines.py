"""Where chunks are scored: in this process (``local``) or on a Dask cluster (``dask``).

The local engine is a pipeline (``run_pipeline``): while chunk i is scored, chunk i+1 is
read and encoded in one thread and chunk i-1 written in another, through queues of one
chunk each, so at most a handful of chunks are in memory at once. Arrow, NumPy and
TensorFlow release the GIL for their work, so the three steps share the cores.

The Dask engine sends each chunk task to a worker, which reads its chunk from the file
and writes its part files itself, so the files must be on storage every worker sees
(any path works for a ``LocalCluster``). Each worker process loads the model once.
Without ``scheduler``, a ``distributed.LocalCluster`` is started for the run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

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


_END = object()


class _Failed:
    """An exception raised in a pipeline thread, carried to the caller."""

    def __init__(self, error: BaseException):
        self.error = error


def run_pipeline(
    tasks: list[dict],
    prepare: Callable[[dict], dict],
    compute: Callable[[dict], dict],
    commit: Callable[[dict], dict],
    depth: int = 1,
) -> Iterator[dict]:
    """``commit(compute(prepare(task)))`` for every task, in order, overlapped: ``prepare``
    runs a task ahead in one thread, ``commit`` a task behind in another, ``compute`` in
    the caller's thread; queues of ``depth`` items between them bound the memory. Yields
    each commit's result as it is done; an exception in any step stops the others and is
    raised here, and no thread outlives the generator."""
    stop = threading.Event()
    prepared: queue.Queue = queue.Queue(maxsize=depth)
    computed: queue.Queue = queue.Queue(maxsize=depth)
    results: queue.Queue = queue.Queue()

    def put(target: queue.Queue, item) -> bool:
        while not stop.is_set():
            try:
                target.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def get(source: queue.Queue):
        while not stop.is_set():
            try:
                return source.get(timeout=0.05)
            except queue.Empty:
                continue
        return _END

    def reader() -> None:
        try:
            for task in tasks:
                if not put(prepared, prepare(task)):
                    return
            put(prepared, _END)
        except BaseException as error:
            put(prepared, _Failed(error))

    def writer() -> None:
        while (item := get(computed)) is not _END:
            try:
                results.put(commit(item))
            except BaseException as error:
                results.put(_Failed(error))
                stop.set()
                return

    def finished():
        while True:
            try:
                result = results.get_nowait()
            except queue.Empty:
                return
            if isinstance(result, _Failed):
                raise result.error
            yield result

    threads = [threading.Thread(target=f, name=f"chunk-{f.__name__}") for f in (reader, writer)]
    for thread in threads:
        thread.start()
    try:
        while (item := get(prepared)) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            if not put(computed, compute(item)):
                break
            yield from finished()
        put(computed, _END)
        threads[1].join()
        yield from finished()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
