"""Speed and memory: training and scoring throughput, against PyOD's VAE in the same run.

    python benchmarks/speed.py --out benchmarks/results/speed          # about 15 minutes
    python benchmarks/speed.py --quick --out /tmp/speed                 # smoke test
    python benchmarks/speed.py --train-only --out benchmarks/results/speed_train

``--train-only`` measures training alone: ours, ours with the training step compiled
by XLA (``training.JIT_COMPILE = True``, "ours-xla"), and PyOD, in every configuration.

Each measurement runs in a fresh subprocess, so its peak resident memory (VmHWM) is
its own. Training throughput excludes a warm-up epoch (tracing, first allocations):
one fit of 1 + E epochs, each epoch timed from the end of the one before (for us the
``epoch_seconds`` of ``history_``, for PyOD the calls of its ``epoch_update`` hook), and
samples/s = n / median(seconds of epochs 2 .. 1 + E), with E large enough for at least
MIN_TIMED_STEPS optimiser steps. Scoring throughput is n / median of up to
SCORE_REPEATS timings of the same call. Medians, the same for both libraries, because
this machine is shared: single timings of the same epoch vary up to 2x. Floating-point
work is counted from the layer sizes (a dense layer costs 2 * in * out per row forward,
about 3x that for a training step), and the machine's dense float32 matmul rate is
measured in the same run, so each figure shows its distance from the hardware limit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import peak_rss_mb, run_isolated

MIN_TIMED_STEPS = 500
SCORE_REPEATS = 5


def timed_epochs(n: int, batch_size: int, minimum: int = 5) -> int:
    """E: epochs to time after the warm-up epoch, at least MIN_TIMED_STEPS steps in all."""
    steps_per_epoch = -(-n // batch_size)
    return max(minimum, -(-MIN_TIMED_STEPS // steps_per_epoch))


def dense_flops(widths) -> int:
    """Forward multiply-add FLOPs of a dense chain with these widths, per row."""
    return int(sum(2 * a * b for a, b in itertools.pairwise(widths)))


def vae_flops(d: int, hidden: tuple, latent: int, k: int = 1) -> dict[str, int]:
    """FLOPs per row: encoder once, decoder k times (scoring); one sample in training."""
    encoder = dense_flops([d, *hidden, 2 * latent])
    decoder = dense_flops([latent, *reversed(hidden), d])
    return {"train": 3 * (encoder + decoder), "score": encoder + k * decoder}


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    product().numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        product().numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def _data(n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(n, max(1, d // 4)))
    return latent @ rng.normal(size=(latent.shape[1], d)) + 0.1 * rng.normal(size=(n, d))


def _median_rate(rows: int, seconds) -> float:
    return rows / float(np.median(seconds))


def _repeated_seconds(call, budget_s: float = 10.0) -> list[float]:
    """Timings of call(), repeated up to SCORE_REPEATS times or until budget_s has passed."""
    timings = []
    while len(timings) < SCORE_REPEATS and sum(timings) < budget_s:
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return timings


def _ours(task: dict) -> dict:
    from vae_anomaly import VAEAnomalyDetector

    X = _data(task["n"], task["d"])
    params = dict(
        hidden_units=tuple(task["hidden"]),
        latent_dim=task["latent"],
        batch_size=task["batch_size"],
        validation_fraction=0.0,
        random_state=0,
    )
    if task["phase"] == "train":
        if task["library"] == "ours-xla":
            from vae_anomaly import training

            training.JIT_COMPILE = True
        detector = VAEAnomalyDetector(epochs=1 + task["epochs"], **params).fit(X)
        return {"rows_per_s": _median_rate(task["n"], detector.history_["epoch_seconds"][1:])}
    detector = VAEAnomalyDetector(epochs=1, n_score_samples=task["k"], **params).fit(X[:2000])
    detector.score_samples(X[:10])
    big = _data(task["score_rows"], task["d"]) if task["score_rows"] != task["n"] else X
    seconds = _repeated_seconds(lambda: detector.score_samples(big))
    return {"rows_per_s": _median_rate(len(big), seconds)}


def _pyod(task: dict) -> dict:
    from pyod.models.vae import VAE

    class TimedVAE(VAE):
        """PyOD's VAE, noting the time at the end of every epoch."""

        def epoch_update(self):
            super().epoch_update()
            self.epoch_ends_.append(time.perf_counter())

    X = _data(task["n"], task["d"])
    hidden = list(task["hidden"])
    params = dict(
        encoder_neuron_list=hidden,
        decoder_neuron_list=hidden[::-1],
        latent_dim=task["latent"],
        batch_size=task["batch_size"],
        verbose=0,
        random_state=0,
    )
    if task["phase"] == "train":
        model = TimedVAE(epoch_num=1 + task["epochs"], **params)
        model.epoch_ends_ = []
        model.fit(X)
        return {"rows_per_s": _median_rate(task["n"], np.diff(model.epoch_ends_))}
    model = VAE(epoch_num=1, **params).fit(X[:2000])
    model.decision_function(X[:10])
    seconds = _repeated_seconds(lambda: model.decision_function(X))
    return {"rows_per_s": _median_rate(len(X), seconds)}


def worker(task: dict) -> None:
    result = (_pyod if task["library"] == "pyod" else _ours)(task)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(task: dict) -> dict:
    return run_isolated(__file__, task)


def train_plan(with_pyod: bool, xla: bool = True) -> list[dict]:
    """Training only: ours, ours with XLA (``xla``), and PyOD, in each configuration of
    ``plan``."""
    tasks = []
    libraries = ["ours"] + (["ours-xla"] if xla else []) + (["pyod"] if with_pyod else [])
    for n, d in [(20_000, 10), (20_000, 100)]:
        for batch_size in (32, 1024):
            for library in libraries:
                base = dict(library=library, n=n, d=d, batch_size=batch_size, **PYOD_ARCH)
                tasks.append(dict(base, phase="train", epochs=timed_epochs(n, batch_size)))
    for library in ("ours", "ours-xla") if xla else ("ours",):
        mnist = dict(library=library, n=20_000, d=784, hidden=[512, 256], latent=32)
        tasks.append(dict(mnist, batch_size=1024, phase="train", epochs=timed_epochs(20_000, 1024)))
    return tasks


PYOD_ARCH = dict(hidden=[128, 64, 32], latent=2)  # PyOD VAE's default layers


def plan(quick: bool, with_pyod: bool) -> list[dict]:
    if quick:  # smoke test: the code paths, not meaningful figures
        base = dict(n=2000, d=10, hidden=[32, 16], latent=2, batch_size=256)
        tasks = [
            dict(base, library="ours", phase="train", epochs=2),
            dict(base, library="ours", phase="score", k=8, score_rows=2000),
        ]
        if with_pyod:
            tasks.append(dict(base, library="pyod", phase="train", epochs=2))
        return tasks
    tasks = []
    pyod_arch = PYOD_ARCH
    sizes = [(20_000, 10), (20_000, 100)]
    for n, d in sizes:
        for batch_size in (32, 1024):
            for library in ["ours"] + (["pyod"] if with_pyod else []):
                base = dict(library=library, n=n, d=d, batch_size=batch_size, **pyod_arch)
                tasks.append(dict(base, phase="train", epochs=timed_epochs(n, batch_size)))
                tasks.append(dict(base, phase="score", k=1, score_rows=n))
    mnist = dict(library="ours", n=20_000, d=784, hidden=[512, 256], latent=32, batch_size=1024)
    tasks.append(dict(mnist, phase="train", epochs=timed_epochs(20_000, 1024)))
    for k in (1, 8, 64, 256):
        for n, d in [(20_000, 10), (20_000, 100)]:
            tasks.append(
                dict(
                    library="ours",
                    n=n,
                    d=d,
                    batch_size=1024,
                    phase="score",
                    k=k,
                    score_rows=n,
                    **pyod_arch,
                )
            )
    tasks.append(
        dict(
            library="ours",
            n=20_000,
            d=10,
            batch_size=1024,
            phase="score",
            k=64,
            score_rows=1_000_000,
            **pyod_arch,
        )
    )
    return tasks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speed"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    parser.add_argument("--no-pyod", action="store_true", help="skip the PyOD peer")
    parser.add_argument(
        "--train-only", action="store_true", help="training only, with and without XLA"
    )
    parser.add_argument("--no-xla", action="store_true", help="--train-only without XLA")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measure every task this many times, in rounds (each task once per round); "
        "the tables show the median of the repeats",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    import importlib.util

    import pandas as pd

    with_pyod = not args.no_pyod and importlib.util.find_spec("pyod") is not None
    peak = matmul_gflops(1024 if args.quick else 2048)
    print(f"dense float32 matmul: {peak:.1f} GFLOP/s", file=sys.stderr, flush=True)
    rows = []
    tasks = (
        train_plan(with_pyod, xla=not args.no_xla)
        if args.train_only
        else plan(args.quick, with_pyod)
    )
    # Rounds: a burst of other work on the shared machine then falls on one repeat of
    # every task, not on every repeat of one.
    tasks = [dict(task, repeat=r) for r in range(args.repeats) for task in tasks]
    for i, task in enumerate(tasks, 1):
        row = measure(task)
        flops = vae_flops(row["d"], tuple(row["hidden"]), row["latent"], row.get("k", 1))
        row["gflop_per_s"] = row["rows_per_s"] * flops[row["phase"]] / 1e9
        row["fraction_of_matmul_peak"] = row["gflop_per_s"] / peak
        rows.append(row)
        print(
            f"[{i}/{len(tasks)}] {row['library']} {row['phase']} n={row['n']} d={row['d']} "
            f"batch={row['batch_size']} k={row.get('k', '-')}: {row['rows_per_s']:,.0f} rows/s,"
            f" peak {row['peak_rss_mb']:.0f} MB",
            file=sys.stderr,
            flush=True,
        )
    runs = pd.DataFrame(rows)
    runs["hidden"] = runs["hidden"].map(lambda h: "-".join(map(str, h)))
    args.out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(args.out / "runs.csv", index=False)
    table = _markdown(_medians(runs), peak, with_pyod)
    (args.out / "table.md").write_text(table)
    print(table)
    return 0


def _medians(runs):
    """One row per task: the medians of its repeats (the runs themselves when once)."""
    measured = ["rows_per_s", "gflop_per_s", "fraction_of_matmul_peak", "peak_rss_mb"]
    keys = [c for c in runs.columns if c not in [*measured, "repeat"]]
    return runs.groupby(keys, dropna=False, sort=False)[measured].median().reset_index()


def _markdown(runs, peak: float, with_pyod: bool) -> str:
    import pandas as pd

    lines = [f"Dense float32 matmul on this machine: {peak:.1f} GFLOP/s.\n"]
    columns = [
        "library",
        "phase",
        "n",
        "d",
        "hidden",
        "latent",
        "batch_size",
        "k",
        "score_rows",
        "rows_per_s",
        "gflop_per_s",
        "fraction_of_matmul_peak",
        "peak_rss_mb",
    ]
    shown = runs.reindex(columns=columns).round(3)
    lines.append(shown.to_markdown(index=False) + "\n")
    if with_pyod:
        keys = ["phase", "n", "d", "batch_size"]
        theirs = runs[runs.library == "pyod"].set_index(keys)["rows_per_s"]
        ratios = []
        for library in ("ours", "ours-xla"):
            mine = runs[runs.library == library].set_index(keys)["rows_per_s"]
            if len(mine):
                ratio = mine.groupby(level=keys).first() / theirs
                ratios.append(ratio.dropna().rename(f"{library} / pyod"))
        lines.append(
            "Throughput ratio, vae-anomaly / PyOD VAE (same layers, batch size, "
            "epochs; k = 1 for scoring):\n"
        )
        table = pd.concat(ratios, axis=1).round(2).reset_index()
        lines.append(table.to_markdown(index=False) + "\n")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
