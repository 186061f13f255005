"""Round 22 probe: run a benchmark script with a larger step budget for epochs=None.

training.AUTO_EPOCH_STEPS (3000 optimiser steps, within AUTO_EPOCH_RANGE 10-300 epochs) is
set from the environment variable BUDGET_STEPS, for the screening fit and the sharp fit
alike (the screening fit stops early after 10 epochs without progress either way):
BUDGET_STEPS=6000 python budget_driver.py benchmarks/structure.py --detectors vae ...
"""

import os
import runpy
import sys

import vae_anomaly.training as training

training.AUTO_EPOCH_STEPS = int(os.environ["BUDGET_STEPS"])
print("AUTO_EPOCH_STEPS", training.AUTO_EPOCH_STEPS, "from", training.__file__, flush=True)
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
