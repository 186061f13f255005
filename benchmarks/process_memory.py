"""Peak resident memory of the current process, as the benchmarks report it."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM from /proc, else ru_maxrss.

    ru_maxrss is not enough for a worker started by a large parent: Linux carries the
    parent's high-water mark through fork and exec into the child's ru_maxrss, while
    VmHWM belongs to the new address space and starts afresh at exec.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
