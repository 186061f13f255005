"""``score_samples`` on a large array: the whole array at once against blocks of rows.

The detector scales, range-checks and scores X a block of about
``scoring.SCORING_BLOCK_VALUES`` values at a time (``VAEAnomalyDetector._terms``). This
benchmark fits one model (the defaults, two epochs, unscreened: the scores' speed does not
depend on how well it fits) on ``--columns`` standard normal columns, then scores the same
``--rows`` rows in rounds, alternating the shipped block size with one block of the whole
array, in one process: seconds and rows/s per call, the scores of the two checked to be
equal. Then one more call of each under ``tracemalloc`` gives the peak of the memory
NumPy allocates in it (the float64 and float32 copies of X and the per-row outputs;
TensorFlow's own buffers are not counted).

    python benchmarks/score_blocks.py --rows 1000000 --rounds 5 \
        --out benchmarks/results/score_blocks
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import write_tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/score_blocks"))
    args = parser.parse_args(argv)

    import vae_anomaly.scoring as scoring
    from vae_anomaly import VAEAnomalyDetector

    shipped = scoring.SCORING_BLOCK_VALUES
    rng = np.random.default_rng(0)
    detector = VAEAnomalyDetector(epochs=2, screen_outliers=False, random_state=0)
    detector.fit(rng.normal(size=(20_000, args.columns)))
    X = rng.normal(size=(args.rows, args.columns))
    detector.score_samples(X[:5_000])  # traced, not timed
    block_rows = scoring.scoring_block_rows(detector.model_, detector.n_score_samples, args.columns)

    kinds = [("blocks", shipped), ("whole array", 2**62)]
    runs, scores = [], {}
    for round_ in range(args.rounds):
        for kind, values in kinds:
            scoring.SCORING_BLOCK_VALUES = values
            started = time.perf_counter()
            scores[kind] = detector.score_samples(X)
            seconds = time.perf_counter() - started
            runs.append(
                {
                    "kind": kind,
                    "round": round_,
                    "rows": args.rows,
                    "block_rows": block_rows if kind == "blocks" else args.rows,
                    "seconds": seconds,
                    "rows_per_s": args.rows / seconds,
                }
            )
            print(f"{kind}, round {round_}: {args.rows / seconds:,.0f} rows/s", flush=True)
        if not np.array_equal(scores["blocks"], scores["whole array"]):
            raise SystemExit("the scores in blocks differ from the whole array's")
    peaks = {}
    for kind, values in kinds:  # one more call each, traced (tracing slows the calls)
        scoring.SCORING_BLOCK_VALUES = values
        tracemalloc.start()
        detector.score_samples(X)
        peaks[kind] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    scoring.SCORING_BLOCK_VALUES = shipped

    frame = pd.DataFrame(runs)
    summary = frame.groupby("kind").agg(
        block_rows=("block_rows", "first"),
        median_rows_per_s=("rows_per_s", "median"),
        min_rows_per_s=("rows_per_s", "min"),
        max_rows_per_s=("rows_per_s", "max"),
    )
    summary["numpy_peak_mb"] = pd.Series(peaks)
    summary["block_rows"] = summary["block_rows"].map("{:,}".format)
    ratio = (
        summary.loc["blocks", "median_rows_per_s"] / summary.loc["whole array", "median_rows_per_s"]
    )
    markdown = (
        f"`score_samples` on {args.rows:,} rows x {args.columns} columns, {args.rounds} rounds "
        "alternating (one process; scores equal):\n\n"
        + summary.round(1).to_markdown()
        + f"\n\nBlocks / whole array, median rows/s: {ratio:.3f}\n"
    )
    write_tables(frame, markdown, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
