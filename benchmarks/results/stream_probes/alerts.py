"""CPU per flagged row of the alert records, before and after commit b6709de (throwaway probe).

    python alerts.py

Loads ``vae_anomaly/alerts.py`` as it was at b6709de's parent (``git show``) beside the
current one, builds the records of 5,000 flagged rows with each (d = 8 and 14 float64
columns as the tabular job's terms, d = 784 float32 as the image job's 28 x 28 maps)
and encodes them as JSON Lines text, each version's own way: ``json.dumps`` per record before,
``json_line`` after. Prints the process CPU per flagged row (best of five) and whether
the two versions wrote the same bytes.
"""

import importlib.util
import json
import subprocess
import time
from datetime import UTC, datetime

import numpy as np

from vae_anomaly import alerts as new

source = subprocess.run(
    ["git", "show", "b6709de^:vae_anomaly/alerts.py"], capture_output=True, text=True, check=True
).stdout
spec = importlib.util.spec_from_loader("vae_anomaly.alerts_before", loader=None)
old = importlib.util.module_from_spec(spec)
exec(compile(source, "alerts_before.py", "exec"), old.__dict__)

rng = np.random.default_rng(0)
when = datetime(2026, 11, 29, tzinfo=UTC)
m = 5000
for d, dtype in ((8, np.float64), (14, np.float64), (784, np.float32)):
    contributions = rng.normal(size=(m, d)).astype(dtype)
    contributions[::7] = np.abs(contributions[::7])  # rows without excess
    contributions[1::9, :3] = 0.0  # ties
    ids = np.array([f"records.csv:{i}" for i in range(m)], dtype=object)
    scores, p_values = rng.normal(size=m), rng.uniform(size=m)
    names = [f"c{j}" for j in range(d)]
    result = {}
    for label, module, line in (
        ("before", old, lambda r: json.dumps(r, allow_nan=False) + "\n"),
        ("after", new, new.json_line),
    ):
        best = []
        for _ in range(5):
            started = time.process_time()
            records = module.flagged_records(
                ids, scores, 1.5, p_values, contributions, names, 3, when
            )
            text = "".join(line(r) for r in records)
            best.append(time.process_time() - started)
        result[label] = (round(1e6 * min(best) / m, 2), text)
    print(
        {"d": d, "dtype": np.dtype(dtype).name}
        | {f"{label}_us": us for label, (us, _) in result.items()}
        | {"same_bytes": result["before"][1] == result["after"][1]}
    )
