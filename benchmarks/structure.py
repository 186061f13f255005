"""Anomalies that break a relation between columns while each column's marginal stays normal.

Each generator draws normal rows that obey one kind of structure, and anomalies that break
it with every column still in its usual range:

    linear     b = 2a + N(0, 0.1^2); anomalies move b off the line by 1.0-1.5 (10-15 sd),
               a and b both within their usual ranges
    ring       x^2 + y^2 = 1, radius noise 0.05; anomalies inside (radius 0.3-0.8) or just
               outside along the diagonals (radius 1.2-1.35, so |x|, |y| < 1)
    spiral     r = 0.2 t, t in [pi, 5 pi], radius noise 0.05 (arms 1.26 apart); anomalies
               half-way between two arms
    low_rank   8 columns = 2 latent factors times a fixed 2 x 8 map + N(0, 0.1^2); anomalies
               take each column from a different normal row (exactly normal marginals)
    step       a flag set exactly when runtime > 600 (runtime uniform on [0, 1000]), and an
               unrelated load; anomalies: flag 0 past 650, or flag 1 below 550
    clusters   6 of the 16 corners of {0, 4}^4 with noise 0.5; anomalies at the other 10
               corners (each coordinate is still 0 or 4)
    category   through the CSV job (``vae-anomaly fit``/``score``'s functions on written
               files): machine_type (pump, fan, compressor) sets rpm (1500, 900, 3000, sd
               40-80); load and power follow; anomalies carry another type's rpm

Each generator is run with clean training data (5,000 normal rows) and with 5% of the
training rows anomalies (``contaminated``); the test part is 2,000 normal rows and 40
anomalies. The peers run at their defaults on standardised features (``peers.py``; the
category one-hot encoded for them), VAEAnomalyDetector at its defaults on the raw
columns (the category generator: the CSV job with ``pipelines/tabular.toml``).

    python benchmarks/structure.py --out benchmarks/results/structure
    python benchmarks/structure.py --quick --out /tmp/structure   # smoke run, tiny data

Writes OUT/runs.csv (one row per generator, training, seed and detector) and OUT/table.md:
test AUROC, and how many of the anomalies are among the top-scored rows (as many rows as
there are anomalies).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolated import seconds_line, write_tables
from peers import PEERS

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "tabular.toml"
TRAININGS = ("clean", "contaminated")
CONTAMINATION = 0.05


# ----------------------------------------------------------------------------- generators
# Each takes (rng, n_normal, n_anomaly) and returns (normal rows, anomalies) as DataFrames.


def linear(rng, n, m):
    a = rng.normal(0.0, 1.0, n)
    normal = pd.DataFrame({"a": a, "b": 2.0 * a + rng.normal(0.0, 0.1, n)})
    a = rng.uniform(-1.5, 1.5, m)
    offset = rng.choice([-1.0, 1.0], m) * rng.uniform(1.0, 1.5, m)
    return normal, pd.DataFrame({"a": a, "b": 2.0 * a + offset})


def _polar(radius, angle):
    return pd.DataFrame({"x": radius * np.cos(angle), "y": radius * np.sin(angle)})


def ring(rng, n, m):
    normal = _polar(1.0 + rng.normal(0.0, 0.05, n), rng.uniform(0.0, 2 * np.pi, n))
    inside = m // 2
    diagonal = np.pi / 4 + (np.pi / 2) * rng.integers(0, 4, m - inside)
    anomalies = pd.concat(
        [
            _polar(rng.uniform(0.3, 0.8, inside), rng.uniform(0.0, 2 * np.pi, inside)),
            _polar(
                rng.uniform(1.2, 1.35, len(diagonal)),
                diagonal + rng.uniform(-0.2, 0.2, len(diagonal)),
            ),
        ],
        ignore_index=True,
    )
    return normal, anomalies


def spiral(rng, n, m):
    t = rng.uniform(np.pi, 5 * np.pi, n)
    normal = _polar(0.2 * t + rng.normal(0.0, 0.05, n), t)
    t = rng.uniform(np.pi, 4 * np.pi, m)
    return normal, _polar(0.2 * (t + np.pi), t)  # half-way to the next arm out


def low_rank(rng, n, m):
    loadings = np.random.default_rng(12345).normal(size=(2, 8))  # the same map every seed
    columns = [f"x{j}" for j in range(8)]

    def rows(count):
        return rng.normal(size=(count, 2)) @ loadings + rng.normal(0.0, 0.1, (count, 8))

    donors = rows(m * 8).reshape(8, m, 8)
    anomalies = np.stack([donors[j, :, j] for j in range(8)], axis=1)
    return pd.DataFrame(rows(n), columns=columns), pd.DataFrame(anomalies, columns=columns)


def step(rng, n, m):
    runtime = rng.uniform(0.0, 1000.0, n)
    normal = pd.DataFrame(
        {"runtime_h": runtime, "flag": (runtime > 600).astype(float), "load": rng.normal(50, 10, n)}
    )
    late = m // 2
    runtime = np.r_[rng.uniform(650.0, 1000.0, late), rng.uniform(0.0, 550.0, m - late)]
    anomalies = pd.DataFrame(
        {
            "runtime_h": runtime,
            "flag": np.r_[np.zeros(late), np.ones(m - late)],
            "load": rng.normal(50, 10, m),
        }
    )
    return normal, anomalies


def clusters(rng, n, m):
    corners = 4.0 * np.array([[(c >> j) & 1 for j in range(4)] for c in range(16)])
    normal_corners = corners[[0, 3, 5, 10, 12, 15]]
    other = np.array([c for c in corners if not (c == normal_corners).all(axis=1).any()])
    columns = [f"x{j}" for j in range(4)]
    normal = normal_corners[rng.integers(0, len(normal_corners), n)] + rng.normal(0, 0.5, (n, 4))
    anomalies = other[rng.integers(0, len(other), m)] + rng.normal(0, 0.5, (m, 4))
    return pd.DataFrame(normal, columns=columns), pd.DataFrame(anomalies, columns=columns)


MACHINES = {"pump": (1500.0, 40.0), "fan": (900.0, 40.0), "compressor": (3000.0, 80.0)}


def category(rng, n, m):
    def rows(count, rpm_of):
        kind = rng.choice(list(MACHINES), count, p=[0.5, 0.3, 0.2])
        loc, sd = np.array([MACHINES[rpm_of(k)] for k in kind]).T
        load = rng.uniform(20.0, 100.0, count)
        rpm = loc + rng.normal(0.0, 1.0, count) * sd
        return pd.DataFrame(
            {
                "machine_type": kind,
                "load_pct": load,
                "rpm": rpm,
                "power_kw": 0.4 * load + 0.002 * rpm + rng.normal(0.0, 1.0, count),
            }
        )

    names = list(MACHINES)
    # An anomaly has the rpm of the next type (pump -> fan's, fan -> compressor's, ...).
    return rows(n, lambda k: k), rows(m, lambda k: names[(names.index(k) + 1) % len(names)])


GENERATORS = {
    "linear": linear,
    "ring": ring,
    "spiral": spiral,
    "low_rank": low_rank,
    "step": step,
    "clusters": clusters,
    "category": category,
}
THROUGH_THE_JOB = {"category"}


def make_split(generator: str, training: str, seed: int, n_train: int, n_test: int, n_anom: int):
    """(train, test, y_test) frames; ``contaminated`` training holds 5% anomalies."""
    rng = np.random.default_rng([seed, sorted(GENERATORS).index(generator)])
    n_bad = round(CONTAMINATION * n_train) if training == "contaminated" else 0
    normal, anomalies = GENERATORS[generator](rng, n_train - n_bad + n_test, n_bad + n_anom)
    train = pd.concat([normal.iloc[: n_train - n_bad], anomalies.iloc[:n_bad]])
    train = train.iloc[rng.permutation(len(train))].reset_index(drop=True)
    test = pd.concat([normal.iloc[n_train - n_bad :], anomalies.iloc[n_bad:]], ignore_index=True)
    y_test = np.r_[np.zeros(n_test, dtype=int), np.ones(n_anom, dtype=int)]
    return train, test, y_test


# ----------------------------------------------------------------------------- detectors


def numeric(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays of both frames, text columns one-hot encoded on the training levels."""
    text = [c for c in train.columns if not pd.api.types.is_numeric_dtype(train[c])]
    levels = {c: sorted(train[c].unique()) for c in text}

    def encode(frame):
        parts = [frame.drop(columns=text).to_numpy(dtype=np.float64)]
        parts += [(frame[c].to_numpy()[:, None] == np.array(levels[c])).astype(float) for c in text]
        return np.hstack(parts)

    return encode(train), encode(test)


def vae_through_the_job(train, test, seed, params, epochs=None) -> np.ndarray:
    """Anomaly scores of the test rows from the CSV job: fit on train.csv, score test.csv."""
    from vae_anomaly.tabular.config import load_config
    from vae_anomaly.tabular.fit_job import fit_job
    from vae_anomaly.tabular.score_job import score_job

    config = load_config(PIPELINE)
    model = {**config.model, "random_state": seed, **params}
    if epochs:
        model["epochs"] = epochs
    config = dataclasses.replace(config, model=model, roles={"record_id": "passthrough"})
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, frame in (("train", train), ("test", test)):
            frame.insert(0, "record_id", np.arange(len(frame)))
            frame.to_csv(folder / f"{name}.csv", index=False)
        fit_job([folder / "train.csv"], folder / "model", config)
        score_job(
            folder / "model",
            [folder / "test.csv"],
            folder / "scored.csv",
            folder / "rejects.csv",
            folder / "report.json",
            progress=False,
        )
        scored = pd.read_csv(folder / "scored.csv").sort_values("record_id")
    if len(scored) != len(test):
        raise RuntimeError(f"the job scored {len(scored)} of {len(test)} test rows")
    return scored["anomaly_score"].to_numpy(dtype=np.float64)


def scores_of(name, generator, train, test, seed, vae_params, epochs) -> np.ndarray:
    if name == "vae" and generator in THROUGH_THE_JOB:
        return vae_through_the_job(train.copy(), test.copy(), seed, vae_params, epochs)
    X_train, X_test = numeric(train, test)
    if name == "vae":
        params = {**vae_params, **({"epochs": epochs} if epochs else {})}
        return PEERS["vae"](X_train, X_test, seed, **params)["vae-elbo"]
    (score,) = PEERS[name](X_train, X_test, seed).values()
    return score


def run(generators, trainings, seeds, detectors, sizes, vae_params=None, epochs=None):
    n_anom = sizes[2]
    runs = []
    total = len(generators) * len(trainings) * len(seeds) * len(detectors)
    for generator in generators:
        for training in trainings:
            for seed in seeds:
                train, test, y_test = make_split(generator, training, seed, *sizes)
                for name in detectors:
                    started = time.perf_counter()
                    score = scores_of(name, generator, train, test, seed, vae_params or {}, epochs)
                    seconds = time.perf_counter() - started
                    top = np.argsort(-score, kind="stable")[:n_anom]
                    runs.append(
                        {
                            "generator": generator,
                            "training": training,
                            "seed": seed,
                            "detector": name,
                            "auroc": roc_auc_score(y_test, score),
                            "average_precision": average_precision_score(y_test, score),
                            "top_hits": int(y_test[top].sum()),
                            "n_anomalies": n_anom,
                            "seconds": seconds,
                        }
                    )
                    print(
                        f"[{len(runs)}/{total}] {generator} {training} seed {seed} {name}: "
                        f"AUROC {runs[-1]['auroc']:.3f}, {runs[-1]['top_hits']}/{n_anom} in "
                        f"the top {n_anom} ({seconds:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    return pd.DataFrame(runs)


def markdown_tables(runs: pd.DataFrame) -> str:
    seeds = sorted(runs["seed"].unique().tolist())
    parts = []
    for metric, title in [
        ("auroc", "Test AUROC"),
        ("top_hits", f"Anomalies among the top {runs['n_anomalies'].iloc[0]} scores"),
    ]:
        table = runs.pivot_table(
            index=["generator", "training"], columns="detector", values=metric, sort=False
        )
        table.index = [f"{g} ({t})" for g, t in table.index]
        table.loc["mean"] = table.mean()
        parts.append(f"{title}, mean over seeds {seeds}:\n")
        parts.append(table.round(3).to_markdown() + "\n")
    parts.append(seconds_line(runs))
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/structure"))
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=GENERATORS)
    parser.add_argument("--training", nargs="+", default=list(TRAININGS), choices=TRAININGS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--detectors", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument(
        "--vae-params", type=json.loads, default={}, help="JSON of VAEAnomalyDetector parameters"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 500 training rows, 2 epochs"
    )
    args = parser.parse_args(argv)
    sizes, epochs = ((500, 100, 10), 2) if args.quick else ((5000, 2000, 40), None)
    runs = run(
        args.generators, args.training, args.seeds, args.detectors, sizes, args.vae_params, epochs
    )
    write_tables(runs, markdown_tables(runs), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
