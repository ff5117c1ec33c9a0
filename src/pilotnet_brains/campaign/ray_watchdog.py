"""A Ray task's watchdog: ``python -m pilotnet_brains.campaign.ray_watchdog WORKER_PID FOLDER``.

It detaches at once (Ray ends a worker's child processes with it), then waits: when the task is over
its folder is gone and the watchdog leaves; when the worker died first (its driver was killed, the task
cancelled by force) it ends every process whose command line names the folder (the run's roslaunch,
master and nodes: SIGTERM, then SIGKILL) and removes the folder. Plain Python: no ROS, no ray."""
from __future__ import annotations

import os
import shutil
import signal
import sys
import time

from pilotnet_brains.util import processes_naming


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main(worker: int, folder: str) -> None:
    if os.fork():
        os._exit(0)
    os.setsid()
    while _alive(worker) and os.path.isdir(folder):
        time.sleep(1.0)
    if not os.path.isdir(folder):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_naming(folder):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + 10.0
        while processes_naming(folder) and time.monotonic() < deadline:
            time.sleep(0.5)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
