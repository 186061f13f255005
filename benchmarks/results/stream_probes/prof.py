"""Stage CPU of the score job, the three steps run one after the other (throwaway probe).

    python prof.py            # at 7b724a3 and later: scored rows appended to the log

Fits the tabular job's model on the bundled training file into /tmp/prof/model, writes
a 1M-row file of benchmarks/stream.py's generator, then prepares, scores and commits
its 50 chunks in turn, timing each step's process CPU, and profiles prepare and commit.
"""

import cProfile
import pstats
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, "/work/main/benchmarks")
from stream import write_csv

from vae_anomaly.tabular import score_job as sj
from vae_anomaly.tabular.config import JobConfig, load_config
from vae_anomaly.tabular.fit_job import fit_job
from vae_anomaly.tabular.reader import scan_file
from vae_anomaly.tabular.saved import model_fingerprint

WORK = Path("/tmp/prof")
ROOT = Path("/work/main")
if not (WORK / "model").exists():
    config = load_config(ROOT / "pipelines" / "tabular.toml")
    fit_job([ROOT / "sample_data" / "machines_train.csv"], WORK / "model", config)
csv = WORK / "records.csv"
if not csv.exists():
    write_csv(csv, rows=1_000_000)
model_dir = str((WORK / "model").resolve())
fingerprint = model_fingerprint(model_dir)
detector, schema, document = sj.cached_model(model_dir, fingerprint)
settings = JobConfig(**document["settings"])
detector.score_samples(np.full((1, detector.n_features_in_), 0.5))
started = time.process_time()
plans, _ = scan_file(csv, settings.chunk_rows, settings.delimiter)
print("scan cpu", time.process_time() - started, "chunks", len(plans))
parts = WORK / "parts"
shutil.rmtree(parts, ignore_errors=True)
parts.mkdir()
cpu = {"prepare": 0.0, "score": 0.0, "commit": 0.0}
profiles = {"prepare": cProfile.Profile(), "commit": cProfile.Profile()}
for plan in plans:
    task = {
        "plan": asdict(plan),
        "file_index": 0,
        "settings": asdict(settings),
        "model_dir": model_dir,
        "fingerprint": fingerprint,
        "parts_dir": str(parts),
        "scored_log": str(parts / "scored.csv.log"),
    }
    item = task
    for step, function in [
        ("prepare", sj.prepare_chunk),
        ("score", sj.score_prepared),
        ("commit", sj.commit_chunk),
    ]:
        started = time.process_time()
        if step in profiles:
            profiles[step].enable()
        item = function(item)
        if step in profiles:
            profiles[step].disable()
        cpu[step] += time.process_time() - started
n = sum(plan.n_lines for plan in plans)
print({step: round(1e6 * seconds / n, 3) for step, seconds in cpu.items()}, "us/row CPU")
for step, profile in profiles.items():
    print(step)
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)
