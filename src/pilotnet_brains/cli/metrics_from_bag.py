"""``scripts/metrics_from_bag``: recompute a run's lap metrics offline from its rosbag."""
from __future__ import annotations

import argparse
import math
import os
import sys

from pilotnet_brains.helptext import HelpFormatter

#: Metrics compared with the live node's in the --compare printout.
COMPARED = ("lap_time", "distance", "percentage", "average_speed", "deviation_mae", "deviation_max",
            "brain_iterations", "inference_time_mean", "camera_frames", "suddenness", "real_time_factor")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="metrics_from_bag",
        description="Recompute the lap metrics of a recorded run (record:=true) from its bag, with the same "
                    "functions as the live lap_metrics node, and print the table. The circuit and the lap "
                    "limits default to what the live node recorded in the bag's /lap_metrics/laps messages.",
        epilog="Example: metrics_from_bag results/<run-id>/run.bag --out /tmp/offline --compare")
    ap.add_argument("bag", help="the run's bag (results/<run-id>/run.bag)")
    ap.add_argument("--circuit", help="circuit name or .yaml path (default: the one recorded in the bag)")
    ap.add_argument("--laps", type=int, help="laps to look for (default: as recorded, else 1)")
    ap.add_argument("--timeout", type=float, help="sim s per lap before DNF timeout (default: as recorded)")
    ap.add_argument("--out", help="write laps.json, laps.csv, table.md and the plots into this folder")
    ap.add_argument("--json", action="store_true", help="print the per-lap metrics as JSON instead of the table")
    ap.add_argument("--compare", action="store_true", help="print offline vs live (recorded) values per lap")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    if not os.path.exists(a.bag):
        ap.error(f"{a.bag}: no such file (a run records run.bag in its run folder with record:=true)")

    from pilotnet_brains import hostinfo
    from pilotnet_brains.metrics import LapLimits
    from pilotnet_brains.reporting import to_json
    from pilotnet_brains.results import RunWriter, markdown_table, method_label
    from pilotnet_brains.ros.bag_metrics import replay_bag

    limits = None
    if a.laps is not None or a.timeout is not None:
        limits = LapLimits(laps=a.laps or 1, timeout=a.timeout or 0.0)
    try:
        tracker, laps, identity, recorded = replay_bag(a.bag, a.circuit, limits, progress=not a.no_progress)
    except ValueError as e:
        print(f"metrics_from_bag: {e}", file=sys.stderr)
        return 2
    identity = dict(identity) or {"circuit": tracker.circuit.name}
    method = method_label(str(identity.get("brain", "")), str(identity.get("backend", "")))
    if a.out:
        identity["source_bag"] = os.path.abspath(a.bag)
        writer = RunWriter(a.out, identity, hostinfo.describe())
        tracks = [tracker.lap_track(s) for s in tracker.laps]
        writer.write_final(laps, "offline", tracker.circuit, tracks)
    if a.json:
        sys.stdout.write(to_json({"identity": identity, "laps": laps, "recorded": recorded}))
    else:
        sys.stdout.write(markdown_table(laps, method, title=f"{tracker.circuit.name}: {method} (offline from bag)"))
    if a.compare:
        live = {int(r["lap"]): r for r in recorded}
        for lap in laps:
            rec = live.get(int(lap["lap"]))
            print(f"lap {lap['lap']}: {'no live record' if rec is None else ''}")
            for k in COMPARED if rec is not None else ():
                x, y = lap.get(k), rec.get(k)
                xs = "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"
                ys = "-" if y is None else f"{y:.6g}"
                print(f"  {k:22s} offline {xs:>12s}   live {ys:>12s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
