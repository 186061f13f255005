"""Generated mixed-type sample data for the tabular job: hourly machine records.

Columns: ``record_id`` (id), ``timestamp`` (ISO 8601), ``machine_type`` and ``site``
(categorical), ``load_pct``, ``rpm``, ``power_kw``, ``temperature_c``, ``runtime_h``
(numeric), ``maintenance_due`` (yes/no). A few cells are empty (missing). Normal records:

    rpm           = RPM[type] * (0.6 + 0.4 * load / 100)  * exp(N(0, 0.02^2))
    power_kw      = POWER[type] * load / 100              + N(0, (0.03 * POWER[type])^2)
    temperature_c = 30 + SITE[site] + 0.25 * power_kw     + N(0, 1.5^2)
    maintenance_due = runtime_h > 4000, flipped with probability 0.005

The "new" file adds planted anomalies (``ANOMALY_KINDS``) and malformed lines
(``MALFORMED``), and a labels file names the planted ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TYPES = {"pump": (1500.0, 40.0), "compressor": (3000.0, 90.0), "fan": (900.0, 15.0)}
TYPE_SHARES = (0.5, 0.3, 0.2)
SITES = {"north": 0.0, "south": 6.0, "east": 3.0}
ANOMALY_KINDS = (
    "overheating",  # temperature far above what site and power explain
    "wrong_type_rpm",  # a fan running at compressor speed
    "power_without_load",  # power of full load at low load
    "unknown_machine_type",  # a machine type never seen in training
    "maintenance_overdue",  # very long runtime, yet not flagged for maintenance
)
MALFORMED = (
    "wrong field count",
    "not a number",
    "infinite value",
    "not a boolean",
    "blank line",
)
_BROKEN_LINES = (101, 202, 303, 404, 505)  # line index in the new file (0 = header)
TRAIN_FILE = "machines_train.csv"
NEW_FILE = "machines_new.csv"
LABELS_FILE = "machines_new_labels.csv"


def _records(rng: np.random.Generator, n: int, first_id: int, start: str) -> pd.DataFrame:
    kind = rng.choice(list(TYPES), size=n, p=TYPE_SHARES)
    site = rng.choice(list(SITES), size=n)
    rpm_base = np.array([TYPES[k][0] for k in kind])
    power_base = np.array([TYPES[k][1] for k in kind])
    load = rng.uniform(20.0, 100.0, n)
    power = power_base * load / 100 + rng.normal(0.0, 0.03 * power_base)
    runtime = rng.uniform(0.0, 5000.0, n)
    due = (runtime > 4000) ^ (rng.random(n) < 0.005)
    return pd.DataFrame(
        {
            "record_id": np.arange(first_id, first_id + n),
            "timestamp": pd.date_range(start, periods=n, freq="min").strftime("%Y-%m-%dT%H:%M"),
            "machine_type": kind,
            "site": site,
            "load_pct": load,
            "rpm": rpm_base * (0.6 + 0.4 * load / 100) * np.exp(rng.normal(0.0, 0.02, n)),
            "power_kw": power,
            "temperature_c": 30
            + np.array([SITES[s] for s in site])
            + 0.25 * power
            + rng.normal(0.0, 1.5, n),
            "runtime_h": runtime,
            "maintenance_due": np.where(due, "yes", "no"),
        }
    )


def _plant(frame: pd.DataFrame, rows: np.ndarray, kind: str, rng) -> None:
    size = len(rows)
    if size == 0:
        return
    if kind == "overheating":
        frame.loc[rows, "temperature_c"] += rng.uniform(15.0, 25.0, size)
    elif kind == "wrong_type_rpm":
        frame.loc[rows, "machine_type"] = "fan"
        frame.loc[rows, "power_kw"] = 15.0 * frame.loc[rows, "load_pct"] / 100
        frame.loc[rows, "rpm"] = 3000.0 * (0.6 + 0.4 * frame.loc[rows, "load_pct"] / 100)
    elif kind == "power_without_load":
        frame.loc[rows, "load_pct"] = rng.uniform(20.0, 30.0, size)
        base = frame.loc[rows, "machine_type"].map(lambda k: TYPES[k][1])
        frame.loc[rows, "power_kw"] = base * rng.uniform(0.95, 1.0, size)
    elif kind == "unknown_machine_type":
        frame.loc[rows, "machine_type"] = "generator"
    elif kind == "maintenance_overdue":
        frame.loc[rows, "runtime_h"] = rng.uniform(4800.0, 5000.0, size)
        frame.loc[rows, "maintenance_due"] = "no"
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}; expected one of {ANOMALY_KINDS}.")


def _with_missing(frame: pd.DataFrame, rng, share: float = 0.02) -> pd.DataFrame:
    frame = frame.astype({"load_pct": object, "temperature_c": object, "site": object})
    for column in ("load_pct", "temperature_c", "site"):
        frame.loc[rng.random(len(frame)) < share, column] = ""
    return frame


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    decimals = {"load_pct": 1, "rpm": 0, "power_kw": 2, "temperature_c": 1, "runtime_h": 0}
    frame = frame.copy()
    for column, digits in decimals.items():
        frame[column] = frame[column].map(
            lambda v, d=digits: v if isinstance(v, str) else f"{v:.{d}f}"
        )
    return frame


def _break(line: str, breakage: str) -> str:
    fields = line.split(",")
    if breakage == "wrong field count":
        return line + ",extra"
    if breakage == "not a number":
        fields[5] = "12.3.4"  # rpm
    elif breakage == "infinite value":
        fields[6] = "inf"  # power_kw
    elif breakage == "not a boolean":
        fields[9] = "maybe"  # maintenance_due
    elif breakage == "blank line":
        return ""
    return ",".join(fields)


def make_machine_records(n_train=3000, n_new=1000, n_per_kind=4, seed=0):
    """(train lines, new lines, labels): CSV texts of the two files and the labels frame."""
    rng = np.random.default_rng(seed)
    train = _text(_with_missing(_records(rng, n_train, 1, "2026-01-01"), rng))
    new = _records(rng, n_new, 100_001, "2026-03-01")
    intact = np.setdiff1d(np.arange(n_new), [line - 1 for line in _BROKEN_LINES])
    planted = rng.choice(intact, size=n_per_kind * len(ANOMALY_KINDS), replace=False)
    kinds = np.array(["normal"] * n_new, dtype=object)
    for i, kind in enumerate(ANOMALY_KINDS):
        rows = planted[i * n_per_kind : (i + 1) * n_per_kind]
        _plant(new, rows, kind, rng)
        kinds[rows] = kind
    new = _text(_with_missing(new, rng))
    labels = pd.DataFrame(
        {
            "record_id": new["record_id"],
            "is_anomaly": (kinds != "normal").astype(int),
            "kind": kinds,
        }
    )
    lines = new.to_csv(index=False).splitlines()
    for index, breakage in zip(_BROKEN_LINES, MALFORMED, strict=True):
        if index < len(lines):
            lines[index] = _break(lines[index], breakage)
    return train.to_csv(index=False), "\n".join(lines) + "\n", labels


def write_machine_records(directory) -> list[Path]:
    """Write the training file, the new file and its labels into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train, new, labels = make_machine_records()
    paths = [directory / TRAIN_FILE, directory / NEW_FILE, directory / LABELS_FILE]
    paths[0].write_text(train)
    paths[1].write_text(new)
    labels.to_csv(paths[2], index=False)
    return paths
