"""Run a benchmark script with the screening fit's settings overridden (SCREEN_PARAMS, JSON)."""

import json
import os
import runpy
import sys

import vae_anomaly.screening as screening

screening.SCREENING_PARAMS.update(json.loads(os.environ.get("SCREEN_PARAMS", "{}")))
print("SCREENING_PARAMS", screening.SCREENING_PARAMS, "from", screening.__file__, flush=True)
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
