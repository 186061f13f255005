"""Peak memory of ``vae-anomaly fit`` on a large training CSV: in memory against streamed.

    flock /tmp/bench.lock python benchmarks/fit_memory.py --rows 2000000 \
        --modes stream memory --out benchmarks/results/fit_memory
    python benchmarks/fit_memory.py --rows 20000 --epochs 1 --out /tmp/fit_memory   # smoke test

Writes a generated training CSV of ``--rows`` rows and 11 columns (the machine records of
``vae-anomaly make-sample-data`` plus a numeric ``vibration_mm_s``) and runs the fit job
on it with the sample settings (``pipelines/tabular.toml``) once per ``--modes``, each in
a fresh process so that its peak resident memory (VmHWM) is its own, TensorFlow
included: ``memory`` holds the file in memory (the job's path for inputs up to
``[fit] in_memory_mb``, today's model exactly), ``stream`` streams it (the path above).
``--code DIR`` runs a mode with the package of another checkout (``memory@/work/main``:
the fit job before streaming existed). ``--chunk-rows`` sets ``[score] chunk_rows``, each
value in turn (the chunks a streamed fit reads and stores: from 06d152e, at most
``fit_stream.FIT_CHUNK_ROWS``; runs.csv gives the length the fit used); ``--rounds`` repeats the
whole cycle, so that settings alternate on a shared machine. Writes OUT/runs.csv and
OUT/table.md.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import peak_rss_mb, run_isolated, write_results  # noqa: E402


def write_training_csv(path: Path, rows: int, seed: int = 3) -> int:
    """Machine records (10 columns) plus vibration_mm_s, ``rows`` data lines; bytes."""
    import numpy as np
    import pandas as pd

    from vae_anomaly.machine_records import make_machine_records

    train, _, _ = make_machine_records(n_train=rows, n_new=10, n_per_kind=0, seed=seed)
    frame = pd.read_csv(io.StringIO(train), dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    rpm = pd.to_numeric(frame["rpm"]).to_numpy()
    vibration = 0.002 * rpm + rng.normal(0.0, 0.3, rows)
    frame["vibration_mm_s"] = np.char.mod("%.2f", vibration)
    frame.to_csv(path, index=False)
    return path.stat().st_size


def worker(task: dict) -> None:
    """Run one fit in this (fresh) process and print its JSON result."""
    sys.path.insert(0, task["code"])
    from vae_anomaly.tabular.config import load_config
    from vae_anomaly.tabular.fit_job import fit_job

    config = load_config(Path(task["code"]) / "pipelines" / "tabular.toml")
    overrides = {"model": {"epochs": task["epochs"]}} if task["epochs"] else {}
    if task["mode"] != "before":  # the key exists only where streaming does
        overrides["in_memory_mb"] = 0 if task["mode"] == "stream" else 10**6
    if task["chunk_rows"]:
        overrides["chunk_rows"] = task["chunk_rows"]
    config = config.with_overrides(**overrides)
    chunk_rows = config.chunk_rows  # the length the fit reads
    if task["mode"] == "stream":
        try:  # from 06d152e a streamed fit reads at most FIT_CHUNK_ROWS lines per chunk
            from vae_anomaly.tabular.fit_stream import FIT_CHUNK_ROWS

            chunk_rows = min(chunk_rows, FIT_CHUNK_ROWS)
        except ImportError:
            pass
    started = time.perf_counter()
    report = fit_job([task["csv"]], Path(task["out"]), config)
    print(
        json.dumps(
            {
                "chunk_rows": chunk_rows,
                "rows_read": report["rows_read"],
                "rows_used": report["rows_used"],
                "n_epochs": report["n_epochs"],
                "seconds": time.perf_counter() - started,
                "peak_rss_mb": peak_rss_mb(),
                "streamed": bool(report.get("streamed", False)),
            }
        )
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_memory"))
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["stream", "memory"],
        help="stream, memory, or before@DIR (the fit job of the checkout DIR, unchanged)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: the job's")
    parser.add_argument(
        "--chunk-rows", type=int, nargs="+", default=[None], help="default: the config's"
    )
    parser.add_argument("--rounds", type=int, default=1, help="cycles over the settings")
    parser.add_argument("--work", type=Path, help="folder for the generated files (default: temp)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    runs = []
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        work = Path(folder)
        for rows in args.rows:
            csv = work / f"train_{rows}.csv"
            size = write_training_csv(csv, rows)
            settings = [
                (round_, mode, chunk_rows)
                for round_ in range(args.rounds)
                for mode in args.modes
                for chunk_rows in args.chunk_rows
            ]
            for index, (round_, mode, chunk_rows) in enumerate(settings):
                name, _, code = mode.partition("@")
                task = {
                    "mode": name,
                    "code": str(Path(code).resolve()) if code else str(ROOT),
                    "csv": str(csv),
                    "out": str(work / f"model_{rows}_{index}"),
                    "epochs": args.epochs,
                    "chunk_rows": chunk_rows,
                }
                result = run_isolated(__file__, task)
                result.update(rows=rows, file_mb=round(size / 1e6, 1), mode=mode, round=round_)
                runs.append(result)
                print(
                    f"{mode} {rows} rows ({size / 1e6:.0f} MB), chunks of "
                    f"{result['chunk_rows']}: peak {result['peak_rss_mb']:.0f} MB, "
                    f"{result['seconds']:.0f} s, {result['n_epochs']} epochs",
                    file=sys.stderr,
                    flush=True,
                )
            csv.unlink()
    columns = ["mode", "rows", "file_mb", "chunk_rows", "round", "rows_used", "n_epochs"]
    columns += ["seconds", "peak_rss_mb"]
    write_results(runs, columns, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
