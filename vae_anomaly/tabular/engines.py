"""Where chunks are scored: in this process (``local``) or on a Dask cluster (``dask``).

The Dask engine sends each chunk task to a worker, which reads its chunk from the file
and writes its part files itself, so the files must be on storage every worker sees
(any path works for a ``LocalCluster``). Each worker process loads the model once.
Without ``scheduler``, a ``distributed.LocalCluster`` is started for the run.
"""

from __future__ import annotations

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
