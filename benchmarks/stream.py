"""Streaming CSV scoring: peak memory stays flat as the file grows; rows per second.

    python benchmarks/stream.py --out benchmarks/results/stream --gigabytes 0.1 2.0
    python benchmarks/stream.py --out benchmarks/results/stream --rows 250000 1000000
    python benchmarks/stream.py --quick --out /tmp/stream                    # smoke test

Fits the tabular job on the bundled machine records, writes generated CSVs of the given
sizes (machine records repeated, planted anomalies and malformed lines included), and
runs the ``vae-anomaly score`` job on each (rows/s exclude the start-up: importing
TensorFlow, loading the model and tracing its scorer, reported apart), every run in a
fresh process so its peak resident memory (VmHWM) is its own. Two peers, in the same
run and on the same file:

- ``score_samples (in memory)``: the same model's ``score_samples`` on the file's rows,
  already encoded in memory (at most ``--peer-rows`` of them; reading and encoding are
  not timed). It is the rate the job is held to: ``vs_score_samples`` is the job's
  rows/s over it. ``cpu_us_per_row`` is each run's CPU time (all its threads) per row,
  and ``cpu_vs_score_samples`` the peer's over the job's: when the scorer alone keeps
  every core busy, the job's rate cannot exceed that fraction of the peer's.
- ``pandas.read_csv``: what a script without chunking does first, reading the whole
  file (no scoring), whose peak memory grows with the file.

Writes OUT/runs.csv and OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import peak_rss_mb, run_isolated, write_results  # noqa: E402


def write_csv(path: Path, gigabytes: float | None = None, rows: int | None = None) -> int:
    """Repeat a block of generated machine records (header once) up to the size in
    gigabytes, or the number of rows (a multiple of 50,000); rows written."""
    from vae_anomaly.machine_records import make_machine_records

    _, block, _ = make_machine_records(n_train=10, n_new=50_000, n_per_kind=20, seed=1)
    header, body = block.split("\n", 1)
    body = body.encode()
    if rows is not None:
        repeats = max(1, round(rows / body.count(b"\n")))
    else:
        repeats = max(1, round(gigabytes * 1e9 / len(body)))
    with open(path, "wb") as handle:
        handle.write(header.encode() + b"\n")
        for _ in range(repeats):
            handle.write(body)
    return repeats * body.count(b"\n")


def worker(task: dict) -> None:
    """Run one measurement in this (fresh) process and print its JSON result."""
    started = time.perf_counter()
    if task["kind"] == "ours":
        from vae_anomaly.tabular.saved import model_fingerprint
        from vae_anomaly.tabular.score_job import cached_model, score_job

        model_dir = str(Path(task["model_dir"]).resolve())
        detector, _, _ = cached_model(model_dir, model_fingerprint(model_dir))  # not timed
        detector.score_samples(np.full((1, detector.n_features_in_), 0.5))  # traced, not timed
        startup = time.perf_counter() - started
        started, cpu_started = time.perf_counter(), time.process_time()

        out = Path(task["out"])
        report, _ = score_job(
            model_dir,
            [task["csv"]],
            out / "scored.csv",
            out / "rejects.csv",
            out / "report.json",
            progress=False,
        )
        rows = report["rows_read"]
        extra = {"rows_scored": report["rows_scored"], "rows_rejected": report["rows_rejected"]}
    elif task["kind"] == PEER_MODEL:
        X = encoded_rows(task["model_dir"], task["csv"], task["peer_rows"])
        from vae_anomaly.tabular.saved import read_model_dir

        detector, _, _ = read_model_dir(task["model_dir"])
        detector.score_samples(X[:1])  # traced, not timed
        startup = time.perf_counter() - started
        started, cpu_started = time.perf_counter(), time.process_time()
        detector.score_samples(X)
        rows, extra = len(X), {"rows_scored": len(X)}
    else:  # the peer: the whole file in memory
        cpu_started = time.process_time()
        frame = pd.read_csv(task["csv"], on_bad_lines="skip")
        rows, extra, startup = len(frame), {}, 0.0
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "cpu_us_per_row": 1e6 * cpu_seconds / rows,
                "startup_seconds": startup,
                "rows_per_s": rows / seconds,
                "peak_rss_mb": peak,
                **extra,
            }
        )
    )


PEER_MODEL = "score_samples (in memory)"


def encoded_rows(model_dir, csv, limit: int) -> np.ndarray:
    """The model's input rows of the first ``limit`` lines of ``csv`` (bad ones left out),
    read and encoded by the job's own reader and schema."""
    from vae_anomaly.tabular.reader import plan_chunks, read_chunk_columns
    from vae_anomaly.tabular.saved import read_model_dir

    detector, schema, _ = read_model_dir(model_dir)
    blocks, lines = [], 0
    for plan in plan_chunks(csv, 20_000):
        if lines >= limit:
            break
        chunk = read_chunk_columns(plan)
        encoded = schema.encode(chunk.cells, len(chunk.lines), (detector.center_, detector.scale_))
        blocks.append(encoded.X)
        lines += plan.n_lines
    return np.vstack(blocks)


def measure(task: dict) -> dict:
    return run_isolated(__file__, task)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/stream"))
    parser.add_argument("--gigabytes", type=float, nargs="+", default=[0.1, 2.0])
    parser.add_argument("--rows", type=int, nargs="+", help="file sizes in rows instead")
    parser.add_argument(
        "--peer-rows", type=int, default=1_000_000, help="rows scored in memory by the peer"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="rounds of (job, score_samples) per size, run alternately: the machine is shared",
    )
    parser.add_argument("--work", type=Path, help="folder for the generated files (default: temp)")
    parser.add_argument("--quick", action="store_true", help="tiny files, few epochs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    from vae_anomaly.tabular.config import load_config
    from vae_anomaly.tabular.fit_job import fit_job

    if args.quick:
        sizes = [{"rows": 50_000}, {"rows": 100_000}]
    elif args.rows:
        sizes = [{"rows": rows} for rows in args.rows]
    else:
        sizes = [{"gigabytes": gigabytes} for gigabytes in args.gigabytes]
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        work = Path(folder)
        config = load_config(ROOT / "pipelines" / "tabular.toml")
        if args.quick:
            config = config.with_overrides(model={"epochs": 2})
        fit_job([ROOT / "sample_data" / "machines_train.csv"], work / "model", config)
        runs = []
        for size in sizes:
            csv = work / "records.csv"
            write_csv(csv, **size)
            size_gb = csv.stat().st_size / 1e9
            kinds = [(kind, r) for r in range(args.repeats) for kind in ("ours", PEER_MODEL)]
            kinds.append(("pandas.read_csv", 0))
            for kind, round_ in kinds:
                (work / "out").mkdir(exist_ok=True)
                task = {
                    "kind": kind,
                    "csv": str(csv),
                    "model_dir": str(work / "model"),
                    "out": str(work / "out"),
                    "peer_rows": args.peer_rows,
                }
                result = measure(task)
                result["file_gb"] = round(size_gb, 3)
                result["round"] = round_
                if kind == PEER_MODEL:
                    runs[-1]["vs_score_samples"] = runs[-1]["rows_per_s"] / result["rows_per_s"]
                    runs[-1]["cpu_vs_score_samples"] = (
                        result["cpu_us_per_row"] / runs[-1]["cpu_us_per_row"]
                    )
                runs.append(result)
                print(
                    f"{kind} {size_gb:.3f} GB: {result['rows']} rows, "
                    f"{result['rows_per_s']:.0f} rows/s, peak {result['peak_rss_mb']:.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
            csv.unlink()
    columns = ["kind", "round", "file_gb", "rows", "startup_seconds", "seconds", "rows_per_s"]
    columns += ["vs_score_samples", "cpu_us_per_row", "cpu_vs_score_samples", "peak_rss_mb"]
    write_results(runs, columns, args.out)
    ratios = pd.DataFrame([r for r in runs if r["kind"] == "ours"])
    for size_gb, group in ratios.groupby("file_gb"):
        ratio = group["vs_score_samples"]
        rounds = ratio.round(3).tolist()
        print(f"{size_gb} GB: vs_score_samples by round {rounds}, median {ratio.median():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
