"""What a perfect density model would flag in the README's sample job.

The bundled machine records come from a known generator (``vae_anomaly.machine_records``),
so the true log-density of every record is known:

    log p(x) = log P(type) + log P(site) + log U(load; 20, 100) + log U(runtime; 0, 5000)
             + log N(power; POWER[type] load / 100, (0.03 POWER[type])^2)
             + log LogNormal(rpm; log(RPM[type] (0.6 + 0.4 load / 100)), 0.02^2)
             + log N(temperature; 30 + SITE[site] + 0.25 power, 1.5^2)
             + log P(maintenance_due | runtime)      (the rule runtime > 4000, flipped w.p. 0.005)
             + log P(which cells are missing)        (each of load, temperature, site: 0.02)

with a missing cell summed or integrated out (load on a grid of 1,601 points). A record
of an unseen machine type has density 0. This script scores the sample files with it and
sets the threshold as the job does: the ``fpr`` (1%) quantile of the training rows'
scores. It counts the planted anomalies of each kind above it and the normal rows
flagged: the best any density score (the VAE's included) can do at that false-alarm
rate on these rows.

    python benchmarks/sample_oracle.py --out benchmarks/results/sample_oracle
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from scipy.stats import norm

from vae_anomaly.machine_records import SITES, TYPE_SHARES, TYPES

ROOT = Path(__file__).resolve().parents[1]
MISSING_SHARE = 0.02  # machine_records._with_missing
FLIP = 0.005  # maintenance_due flipped with this probability
LOADS = np.linspace(20.0, 100.0, 1601)


def _log_type(kind: pd.Series) -> np.ndarray:
    shares = dict(zip(TYPES, TYPE_SHARES, strict=True))
    with np.errstate(divide="ignore"):  # an unseen type: log 0
        return np.log(kind.map(shares).fillna(0.0).to_numpy(float))


def log_density(frame: pd.DataFrame) -> np.ndarray:
    """The generator's log p(x) of each record (parsed CSV rows, missing cells NaN)."""
    kinds = frame["machine_type"]
    known = kinds.isin(list(TYPES)).to_numpy()
    rpm_base = kinds.map({k: v[0] for k, v in TYPES.items()}).fillna(1.0).to_numpy(float)
    power_base = kinds.map({k: v[1] for k, v in TYPES.items()}).fillna(1.0).to_numpy(float)
    load = frame["load_pct"].to_numpy(float)
    rpm = frame["rpm"].to_numpy(float)
    power = frame["power_kw"].to_numpy(float)
    temperature = frame["temperature_c"].to_numpy(float)
    runtime = frame["runtime_h"].to_numpy(float)
    site = frame["site"]
    due = frame["maintenance_due"].astype(str).str.strip().str.lower().eq("yes").to_numpy()

    def given_load(loads: np.ndarray) -> np.ndarray:  # [n, m]: log p(power, rpm | load)
        mean_power = power_base[:, None] * loads / 100
        log_power = norm.logpdf(power[:, None], mean_power, 0.03 * power_base[:, None])
        mean_log_rpm = np.log(rpm_base[:, None] * (0.6 + 0.4 * loads / 100))
        log_rpm = norm.logpdf(np.log(rpm)[:, None], mean_log_rpm, 0.02) - np.log(rpm)[:, None]
        return log_power + log_rpm

    log_p = _log_type(kinds) + np.log(1.0 / 5000.0) * np.isfinite(runtime)
    missing_load = np.isnan(load)
    with np.errstate(divide="ignore", invalid="ignore"):
        present = given_load(np.where(missing_load, 60.0, load)[:, None])[:, 0] - np.log(80.0)
        integrated = logsumexp(given_load(LOADS[None, :]), axis=1) + np.log(
            (LOADS[1] - LOADS[0]) / 80.0
        )
    log_p += np.where(missing_load, integrated, present)

    site_known = site.isin(list(SITES)).to_numpy()
    offsets = site.map(SITES).fillna(0.0).to_numpy(float)
    log_temperature = norm.logpdf(temperature, 30 + offsets + 0.25 * power, 1.5)
    every_site = logsumexp(
        [norm.logpdf(temperature, 30 + o + 0.25 * power, 1.5) for o in SITES.values()], axis=0
    ) - np.log(len(SITES))
    log_p += np.where(
        np.isnan(temperature),
        0.0,  # temperature integrated out (the site's factor stays below)
        np.where(site_known, log_temperature, every_site),
    )
    log_p += np.where(site_known, np.log(1.0 / len(SITES)), 0.0)

    expected_due = runtime > 4000
    log_p += np.where(due == expected_due, np.log(1.0 - FLIP), np.log(FLIP))
    for column in (missing_load, np.isnan(temperature), ~site_known):
        log_p += np.where(column, np.log(MISSING_SHARE), np.log(1.0 - MISSING_SHARE))
    return np.where(known, log_p, -np.inf)


def _parsed(path: Path) -> pd.DataFrame:
    """The file's rows that the job would score (malformed lines left out), cells parsed."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip")
    numeric = ["load_pct", "rpm", "power_kw", "temperature_c", "runtime_h"]
    values = frame[numeric].replace("", np.nan).apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & frame[numeric].ne("")
    bad |= ~np.isfinite(values.fillna(0.0))
    bad_due = ~frame["maintenance_due"].str.strip().str.lower().isin(["yes", "no"])
    keep = ~(bad.any(axis=1) | bad_due)
    frame = frame[keep].copy()
    frame[numeric] = values[keep]
    frame["site"] = frame["site"].replace("", np.nan)
    return frame


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "sample_data")
    parser.add_argument("--fpr", type=float, default=0.01)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sample_oracle"))
    args = parser.parse_args(argv)

    train = _parsed(args.data / "machines_train.csv")
    new = _parsed(args.data / "machines_new.csv")
    labels = pd.read_csv(args.data / "machines_new_labels.csv")
    new = new.merge(labels, left_on=new["record_id"].astype(int), right_on="record_id")
    threshold = float(np.quantile(-log_density(train), 1.0 - args.fpr))
    anomaly_score = -log_density(new)
    new["flagged"] = anomaly_score > threshold
    new["anomaly_score"] = anomaly_score
    by_kind = new.groupby("kind")["flagged"].agg(["sum", "count"]).astype(int)
    result = {
        "fpr": args.fpr,
        "threshold": threshold,
        "flagged_by_kind": {k: [int(r["sum"]), int(r["count"])] for k, r in by_kind.iterrows()},
        "planted_flagged": int(new.loc[new["is_anomaly"] == 1, "flagged"].sum()),
        "planted": int((new["is_anomaly"] == 1).sum()),
        "normal_flagged": int(new.loc[new["is_anomaly"] == 0, "flagged"].sum()),
        "normal": int((new["is_anomaly"] == 0).sum()),
        "maintenance_overdue_scores": sorted(
            new.loc[new["kind"] == "maintenance_overdue", "anomaly_score"].round(2).tolist()
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "oracle.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
