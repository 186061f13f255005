"""Exit statuses of every vae-anomaly job, defined once so schedulers can rely on them.

0  OK        the job finished and no row was flagged
1  FAILED    the job could not finish: bad input, a damaged model, a failed fit
2  USAGE     the command line was malformed (argparse's convention)
3  ALERTS    the job finished and at least one row was flagged (page someone)
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    ALERTS = 3
