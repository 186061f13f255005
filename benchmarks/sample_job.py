"""The README's sample job over several seeds: planted anomalies found, normal rows flagged.

Issue 16's target 4 is read off one run of README command 1 (``random_state = 0`` in
``pipelines/tabular.toml``). One run is one draw: the model's seed changes which of the
borderline planted rows clear the threshold and how many normal rows do. This script runs
the same job, fit on ``sample_data/machines_train.csv`` and score of
``sample_data/machines_new.csv``, once per seed, with the pipeline's settings and
optionally other model parameters, and counts per seed:

    planted found (of 20, by kind)   normal rows flagged (of 975)   threshold
    training rows screened out (``screen_outliers``)

    python benchmarks/sample_job.py --seeds 0 1 2 3 4 --out benchmarks/results/sample_job
    python benchmarks/sample_job.py --seeds 0 1 2 3 4 --model-params '{"beta": 0.5}' \\
        --out benchmarks/results/sample_job_beta05
    python benchmarks/sample_job.py --seeds 0 1 2 3 4 --config pipelines/tabular_clean.toml \\
        --out benchmarks/results/sample_job_clean

Writes ``runs.csv`` (a row per seed) and ``table.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from isolated import write_tables  # noqa: E402

PIPELINE = ROOT / "pipelines" / "tabular.toml"
SAMPLE = ROOT / "sample_data"


def run_seed(seed: int, model_params: dict, folder: Path, pipeline: Path = PIPELINE) -> dict:
    """Fit and score the sample with ``pipeline``'s settings and ``random_state=seed``; the
    seed's counts."""
    from vae_anomaly.tabular.config import load_config
    from vae_anomaly.tabular.fit_job import fit_job
    from vae_anomaly.tabular.labels import label_counts
    from vae_anomaly.tabular.score_job import score_job

    config = load_config(pipeline)
    config = dataclasses.replace(
        config, model={**config.model, **model_params, "random_state": seed}
    )
    model_dir, scored = folder / "model", folder / "scored.csv"
    fit = fit_job([SAMPLE / "machines_train.csv"], model_dir, config)
    report, _ = score_job(
        model_dir,
        [SAMPLE / "machines_new.csv"],
        scored,
        folder / "rejects.csv",
        folder / "report.json",
        progress=False,
    )
    counts = label_counts(scored, SAMPLE / "machines_new_labels.csv", config.id_column)
    return {
        "seed": seed,
        **{key: counts[key] for key in ("planted_found", "planted", "normal_flagged", "normal")},
        "threshold": float(report["threshold"]["anomaly_score"]),
        # training rows the screening fit left out; empty when the pipeline does not screen
        "screened_out": fit.get("rows_screened_out"),
        **{f"found_{kind}": int(counts["found_by_kind"].get(kind, 0)) for kind in counts["kinds"]},
    }


def markdown_table(runs: pd.DataFrame, model_params: dict, pipeline: Path = PIPELINE) -> str:
    kinds = [c for c in runs.columns if c.startswith("found_")]
    columns = ["seed", "planted_found", "normal_flagged", "threshold", "screened_out", *kinds]
    shown = runs[columns].copy()
    mean = shown.mean(numeric_only=True).round(2).to_frame().T.assign(seed="mean")
    table = pd.concat([shown.astype(object), mean.astype(object)], ignore_index=True)
    title = (
        f"README sample job over seeds, {pipeline.name}, "
        f"model parameters {json.dumps(model_params)}"
    )
    planted, normal = int(runs["planted"].iloc[0]), int(runs["normal"].iloc[0])
    note = f"planted_found of {planted}; normal_flagged of {normal} (1% is {normal / 100:.2f})"
    return f"{title}\n\n{note}\n\n{table.to_markdown(index=False)}\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sample_job"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--model-params",
        type=json.loads,
        default={},
        help="JSON of VAEAnomalyDetector parameters over the pipeline's [model]",
    )
    parser.add_argument("--config", type=Path, default=PIPELINE, help="the job's settings (TOML)")
    args = parser.parse_args(argv)
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as folder:
            rows.append(run_seed(seed, args.model_params, Path(folder), args.config))
        print(json.dumps(rows[-1]), flush=True)
    runs = pd.DataFrame(rows)
    kinds = [c for c in runs.columns if c.startswith("found_")]
    runs[kinds] = runs[kinds].fillna(0).astype(int)
    write_tables(runs, markdown_table(runs, args.model_params, args.config), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
