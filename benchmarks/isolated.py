"""Measurements in fresh processes: each benchmark row runs alone, with its own peak RSS.

A script calls ``run_isolated(__file__, task)``; the child runs ``script --worker TASK``
and prints one JSON line, which is merged into the task.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM from /proc, else ru_maxrss.

    ru_maxrss is not enough for a worker started by a large parent: Linux carries the
    parent's high-water mark through fork and exec into the child's ru_maxrss, while
    VmHWM belongs to the new address space and starts afresh at exec.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(script, task: dict, timeout: float = 6 * 3600) -> dict:
    """Run ``python SCRIPT --worker TASK`` and return the task with its JSON result."""
    completed = subprocess.run(
        [sys.executable, str(script), "--worker", json.dumps(task)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{completed.stderr[-3000:]}")
    return {**task, **json.loads(completed.stdout.strip().splitlines()[-1])}


def write_results(runs: list[dict], columns: list[str], out) -> None:
    """OUT/runs.csv and OUT/table.md (Markdown, printed too) from the runs' ``columns``."""
    import pandas as pd

    table = pd.DataFrame(runs)[columns]
    write_tables(table, table.round(3).to_markdown(index=False) + "\n", out)


def write_tables(runs, markdown: str, out) -> None:
    """OUT/runs.csv from the DataFrame ``runs`` and OUT/table.md from ``markdown``, which
    is printed too."""
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False)
    (out / "table.md").write_text(markdown)
    print(markdown)


def seconds_line(runs) -> str:
    """The tables' last line: total fit + score seconds per detector, from ``runs``
    (a DataFrame with the columns detector and seconds)."""
    seconds = runs.groupby("detector")["seconds"].sum().round(1)
    return (
        "Total fit + score seconds per detector: "
        + ", ".join(f"{k} {v}" for k, v in seconds.items())
        + "\n"
    )
