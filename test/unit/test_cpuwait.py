"""Run-queue wait read from /proc, with real processes competing for one CPU."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from pilotnet_brains import cpuwait
from pilotnet_brains.results import cpu_wait_text

SPIN = "import os, sys, time\nos.sched_setaffinity(0, {int(sys.argv[1])})\nend = time.time() + float(sys.argv[2])\nwhile time.time() < end:\n    pass\n"


def test_two_processes_sharing_one_cpu_each_wait_for_it():
    cpu = min(os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(cpu), "1.5"]) for _ in range(2)]
    try:
        time.sleep(0.3)                                   # both started and pinned
        before = [cpuwait.run_queue_wait_s(p.pid) for p in procs]
        time.sleep(0.8)
        after = [cpuwait.run_queue_wait_s(p.pid) for p in procs]
    finally:
        for p in procs:
            p.wait(10)
    # over 0.8 s of one CPU shared by two spinning processes, together they waited about 0.8 s
    grown = [a - b for a, b in zip(after, before)]
    assert sum(grown) > 0.3 and all(g > 0.05 for g in grown), grown
    assert cpuwait.run_queue_wait_s(procs[0].pid) is None        # reaped: nothing to read
    own = cpuwait.run_queue_wait_s(os.getpid())
    assert isinstance(own, float) and own >= 0.0


def test_the_table_note_warns_only_when_a_lap_waited_too_long():
    calm = {"lap": 1, "cpu_wait_brain": 0.004, "cpu_wait_sim": 0.01}
    busy = {"lap": 2, "cpu_wait_brain": 0.30, "cpu_wait_sim": None}
    assert cpu_wait_text([{"lap": 1, "cpu_wait_brain": float("nan")}]) == ""
    text = cpu_wait_text([calm])
    assert "brain 0.4 %, simulator 1.0 %" in text and "busy" not in text
    text = cpu_wait_text([calm, busy])
    assert "lap 2: brain 30.0 %, simulator -" in text and "The machine was busy" in text and "lap(s) 2" in text
    # the simulator's wait alone does not make a lap suspect: it waits on an idle machine too
    assert "busy" not in cpu_wait_text([{"lap": 1, "cpu_wait_brain": 0.01, "cpu_wait_sim": 0.3}])
