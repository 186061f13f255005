"""Generated sample data: machine sensor readings with planted anomalies of several kinds.

Normal readings follow one operating point, the load (%), through physical-looking links:

    rpm         = 900 + 15 * load                    + N(0, 20^2)
    power_kw    = 0.45 * load + 0.004 * rpm          + N(0, 1)
    temperature = 35 + 0.5 * power_kw                + N(0, 1.5^2)
    vibration   = exp(N(log(0.8 + 0.0006 * rpm), 0.1^2))
    pressure    = 280 + 1.8 * load                   + N(0, 6^2)

Each anomaly breaks one link while keeping every column in its usual range where it can,
so a per-column range check does not find it but a model of the joint density does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ANOMALY_KINDS = (
    "overheating",  # temperature too high for the power drawn
    "power_without_load",  # power far above what load and rpm explain
    "rpm_mismatch",  # rpm inconsistent with load
    "vibration_spike",  # bearing wear: vibration several times normal
    "pressure_drop",  # leak: pressure far below what load explains
)
READINGS_FILE = "sensors.csv"
LABELS_FILE = "sensors_labels.csv"


def _normal_readings(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    load = rng.uniform(20.0, 100.0, n)
    rpm = 900.0 + 15.0 * load + rng.normal(0.0, 20.0, n)
    power = 0.45 * load + 0.004 * rpm + rng.normal(0.0, 1.0, n)
    return {
        "load_pct": load,
        "rpm": rpm,
        "power_kw": power,
        "temperature_c": 35.0 + 0.5 * power + rng.normal(0.0, 1.5, n),
        "vibration_mm_s": np.exp(rng.normal(np.log(0.8 + 0.0006 * rpm), 0.1)),
        "pressure_kpa": 280.0 + 1.8 * load + rng.normal(0.0, 6.0, n),
    }


def _plant(columns: dict[str, np.ndarray], rows: np.ndarray, kind: str, rng) -> None:
    size = len(rows)
    if kind == "overheating":
        columns["temperature_c"][rows] += rng.uniform(12.0, 18.0, size)
    elif kind == "power_without_load":
        columns["power_kw"][rows] += rng.uniform(15.0, 25.0, size)
    elif kind == "rpm_mismatch":
        columns["rpm"][rows] -= rng.uniform(300.0, 450.0, size)
    elif kind == "vibration_spike":
        columns["vibration_mm_s"][rows] *= rng.uniform(2.5, 3.5, size)
    elif kind == "pressure_drop":
        columns["pressure_kpa"][rows] -= rng.uniform(50.0, 70.0, size)
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}; expected one of {ANOMALY_KINDS}.")


def make_sensor_readings(
    n_normal: int = 2000, n_per_kind: int = 6, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(readings, labels): readings with a ``reading_id`` column; labels give each id's kind.

    Returns
    -------
    readings : DataFrame of shape (n_normal + 5 * n_per_kind, 7)
    labels : DataFrame with ``reading_id``, ``is_anomaly`` (0/1) and ``kind``
        (``"normal"`` or one of ``ANOMALY_KINDS``).
    """
    rng = np.random.default_rng(seed)
    n = n_normal + n_per_kind * len(ANOMALY_KINDS)
    columns = _normal_readings(rng, n)
    kinds = np.array(["normal"] * n, dtype=object)
    for i, kind in enumerate(ANOMALY_KINDS):
        rows = np.arange(n_normal + i * n_per_kind, n_normal + (i + 1) * n_per_kind)
        _plant(columns, rows, kind, rng)
        kinds[rows] = kind
    order = rng.permutation(n)
    readings = pd.DataFrame({name: np.round(values[order], 3) for name, values in columns.items()})
    readings.insert(0, "reading_id", np.arange(1, n + 1))
    labels = pd.DataFrame(
        {
            "reading_id": readings["reading_id"],
            "is_anomaly": (kinds[order] != "normal").astype(int),
            "kind": kinds[order],
        }
    )
    return readings, labels


def write_sample_data(directory) -> list[Path]:
    """Write ``sensors.csv`` and ``sensors_labels.csv`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    readings, labels = make_sensor_readings()
    paths = [directory / READINGS_FILE, directory / LABELS_FILE]
    readings.to_csv(paths[0], index=False)
    labels.to_csv(paths[1], index=False)
    return paths
