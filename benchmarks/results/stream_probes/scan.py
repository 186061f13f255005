"""Wall time of reader.scan_file on the 2 GB file of join2gb.py, three calls (throwaway).

git stash && python scan.py before; git stash pop && python scan.py after
"""

import sys
import time

from vae_anomaly.tabular.reader import scan_file

for _ in range(3):
    started = time.perf_counter()
    scan_file("/tmp/prof/big.csv", 20_000)
    print(sys.argv[1], round(time.perf_counter() - started, 2), flush=True)
