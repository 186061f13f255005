"""Throwaway: run a benchmark with screening's fence at Tukey's inner 1.5 IQR."""

import os
import runpy
import sys

import vae_anomaly.screening as screening

screening.FENCE_FACTOR = 1.5
script = os.path.abspath(sys.argv[1])
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
