"""XLA for scoring: the ELBO/IWAE scorer compiled by XLA (``scoring.SCORING_JIT_COMPILE``,
the default) against the plain graph, in the same run, on a 10-column model at k = 16.

    python benchmarks/xla_scoring.py --out benchmarks/results/xla_scoring
    python benchmarks/xla_scoring.py --quick --out /tmp/xla_scoring   # smoke test

Each measurement runs in a fresh subprocess, the two kinds alternating ``--rounds``
times, because this machine is shared. Per kind and round: the seconds of a fit on
``--fit-rows`` rows (which traces, and for XLA compiles, the scorer: the fit scores its
training rows for the threshold), and the rows per second of ``score_samples`` on
``--rows`` rows (the median of three calls, after the fit). Scores of the two kinds
agree to float32 rounding, not bit for bit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import run_isolated, write_results


def worker(task: dict) -> dict:
    from vae_anomaly import VAEAnomalyDetector, scoring

    scoring.SCORING_JIT_COMPILE = task["kind"] == "xla"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(task["fit_rows"], 10))
    X[:, 1] = 2 * X[:, 0] + 0.1 * X[:, 1]
    started = time.perf_counter()
    detector = VAEAnomalyDetector(random_state=0, epochs=task["epochs"]).fit(X)
    fit_seconds = time.perf_counter() - started
    rows = rng.normal(size=(task["rows"], 10))
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        scores = detector.score_samples(rows)
        timings.append(time.perf_counter() - started)
    return {
        "fit_seconds": fit_seconds,
        "rows_per_s": task["rows"] / float(np.median(timings)),
        "first_score": float(scores[0]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/xla_scoring"))
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--fit-rows", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.quick:
        args.rows, args.fit_rows, args.epochs, args.rounds = 5_000, 300, 1, 1
    runs = []
    for round_ in range(args.rounds):
        for kind in ("graph", "xla"):
            task = {"kind": kind, "rows": args.rows, "fit_rows": args.fit_rows}
            result = run_isolated(__file__, task | {"epochs": args.epochs})
            runs.append({"round": round_, "kind": kind, **result})
            print(f"round {round_} {kind}: {result}", file=sys.stderr, flush=True)
    columns = ["round", "kind", "fit_seconds", "rows_per_s", "first_score"]
    write_results(runs, columns, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
