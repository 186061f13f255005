"""The score job on one file at one chunk size, for /usr/bin/time (throwaway probe).

    for c in 20000 50000; do for f in /tmp/prof/records.csv /tmp/prof/big.csv; do
      /usr/bin/time -f "$c $f %M KB %e s" flock /tmp/bench.lock python mem.py $c $f 2>&1 | tail -1
    done; done

%M is the peak resident memory, %e the wall seconds of the whole process (start-up,
model load and tracing included). Needs /tmp/prof (prof.py, join2gb.py).
"""

import sys
from pathlib import Path

from vae_anomaly.tabular import score_job as sj
from vae_anomaly.tabular.saved import saved_settings

model_dir = str(Path("/tmp/prof/model").resolve())
config = saved_settings(model_dir).with_overrides(chunk_rows=int(sys.argv[1]))
out = Path("/tmp/prof/t")
sj.score_job(
    model_dir,
    [sys.argv[2]],
    out / "s.csv",
    out / "r.csv",
    out / "r.json",
    config=config,
    progress=False,
)
