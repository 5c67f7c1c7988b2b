"""What this machine lets a run use."""

from __future__ import annotations


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
