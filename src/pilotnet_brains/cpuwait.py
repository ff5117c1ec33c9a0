"""How long a process waited for a CPU: the kernel's run-queue wait of its threads (Linux
``/proc/PID/task/TID/schedstat``, second field, ns).

A realtime lap measures the brain and the simulator only if they got a CPU when they needed it. On
an overloaded machine they wait in the run queue; the lap then shows a lower real-time factor,
skipped frames or even a crash that belong to the machine, not to the backend. The metrics node
samples the cumulative wait of the brain's and the simulator's threads, and every lap reports it per
wall second (:func:`pilotnet_brains.metrics.lap_metrics`: ``cpu_wait_brain``, ``cpu_wait_sim``).
"""
from __future__ import annotations

import os

#: Seconds of the brain's run-queue wait per wall second above which a lap ran on a machine too busy
#: to measure the brain: it waited for a CPU more than 5 % of the lap. The brain's own figure decides,
#: because its answers are what a lap measures; the simulator's is reported beside it but waits even on
#: an idle virtual machine (many short wake-ups a second, each with a little wait: about 7 % measured
#: on an idle 2-core VM, where the brain waited about 1 %).
BUSY_WAIT_SHARE = 0.05


def run_queue_wait_s(pid: int) -> float | None:
    """Total run-queue wait (s) of the live threads of process ``pid``; None when it cannot be read
    (the process ended, or it is not on this host). Threads that have ended no longer count."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    read = False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
            read = True
        except (OSError, IndexError, ValueError):
            continue      # a thread that ended meanwhile
    return total * 1e-9 if read else None
