"""Round 21 probe: score with the mixture of the sharp model and the screening model.

    p(x) = (1 - pi) p_sharp(x) + pi p_screen(x),   pi = rows screened out / fitting rows

is a density (a mixture of two), and its ELBO-based estimate
logaddexp(log(1 - pi) + elbo_sharp, log pi + elbo_screen) is a lower bound of its log.
The screening model covers the rows the screen left out of the sharp fit (the tails
of a Gaussian relation), where the sharp model, which never saw them, is far too sure.

Runs a benchmark script with VAEAnomalyDetector patched in memory:
python mixture_driver.py benchmarks/structure.py --detectors vae ...
"""

import runpy
import sys

import numpy as np

import vae_anomaly.detector as detector_module

original_fit_screen = detector_module.fit_screen
original_log_density = detector_module.VAEAnomalyDetector._log_density


def fit_screen(detector, X_fit, X, layout):
    result = original_fit_screen(detector, X_fit, X, layout)
    detector.mixture_screen_ = result[0]
    detector.mixture_rows_ = X.shape[0]
    return result


def log_density(self, X, rows=None):
    log_sharp = original_log_density(self, X, rows=rows)
    screen = getattr(self, "mixture_screen_", None)
    if screen is None or getattr(self, "n_screened_out_", None) is None:
        return log_sharp
    pi = self.n_screened_out_ / self.mixture_rows_
    if pi <= 0:
        return log_sharp
    log_screen = screen._log_density(X)
    return np.logaddexp(np.log1p(-pi) + log_sharp, np.log(pi) + log_screen)


detector_module.fit_screen = fit_screen
detector_module.VAEAnomalyDetector._log_density = log_density
print("mixture scoring patched into", detector_module.__file__, flush=True)
script, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_path(script, run_name="__main__")
