"""The report's data: finished runs collected, aggregated per (circuit, method), and measured
against the targets."""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from pilotnet_brains.backends.registry import camera_bound
from pilotnet_brains.campaign.matrix import RunSpec, circuit_name
from pilotnet_brains.campaign.runner import OUTCOMES, RUN_RECORD, read_json, run_folder
from pilotnet_brains.campaign.spec import Campaign
from pilotnet_brains.results import METRIC_TITLES
from pilotnet_brains.util import sha256_path

#: The table's metrics: (lap key, column title, digits). Lap time is over completed laps only.
TABLE_METRICS: Sequence[tuple[str, str, int]] = tuple(
    (key, METRIC_TITLES[key], digits) for key, digits in (
        ("average_speed", 3), ("deviation_mae", 3))) + (
    ("deviation_bm_1000pow", "BM position deviation (1000^d)", 2), ("wall_contacts", "Wall contacts", 1)) + tuple(
    (key, METRIC_TITLES[key], digits) for key, digits in (
        ("brain_frequency_wall", 2), ("inference_time_mean", 5), ("real_time_factor", 3), ("lap_time", 2)))
TABLE_HEADER: Sequence[str] = ("Method",) + tuple(t for _, t, _ in TABLE_METRICS) + (
    "Completed", "Size (MB)", "Offline MSE")
#: Every aggregated metric (table ones and those the targets need).
AGG_METRICS: Sequence[str] = tuple(k for k, _, _ in TABLE_METRICS) + (
    "brain_frequency_sim", "brain_frequency_bm", "camera_fps_sim", "deviation_max", "percentage",
    "inference_time_p99", "skipped_frames", "bad_frames", "bad_outputs", "distance", "cpu_wait_brain",
    "cpu_wait_sim")
#: Lap fields that do not depend on the wall clock (equal across lockstep repeats). Not ``commands``
#: and ``suddenness``: the metrics node stamps commands on receipt, so the last one may fall either side
#: of the lap's end. Not ``camera_frames``/``camera_fps_sim`` either: they count the camera_info
#: messages the metrics node received, and two lockstep runs of the default campaign (--jobs 2) with
#: byte-identical trajectories differed by 1-13 of ~1,800 frames in 10 of 66 runs.
SIM_FIELDS: Sequence[str] = ("completed", "dnf_reason", "lap_time", "distance", "percentage", "path_length",
                             "average_speed", "max_speed", "deviation_mae", "deviation_max", "deviation_rmse",
                             "deviation_bm_1000pow", "deviation_bm_mean", "wall_contacts", "wall_contact_time",
                             "brain_iterations", "brain_frequency_sim", "t_start", "t_end")

#: The issue's targets (printed measured vs target; never asserted on timing).
TARGET_MAE_M = 0.30
TARGET_KERAS_IT_S = 56.0
TARGET_RTF = 0.98
TARGET_FRAME_SHARE = 0.95


def collect_runs(campaign_dir: str, specs: Sequence[RunSpec]) -> list[dict[str, Any]]:
    """One record per run that has finished (a run record): identity, outcome and its laps (a hung or
    failed run gets one DNF lap with its outcome as the reason, keeping the laps it completed)."""
    out = []
    for spec in specs:
        folder = run_folder(campaign_dir, spec)
        rec = read_json(os.path.join(folder, RUN_RECORD))
        if not rec or rec.get("key") != spec.key():
            continue
        doc = read_json(os.path.join(folder, "laps.json")) or {}
        laps = [dict(lap) for lap in (doc.get("laps") or [])]
        if rec["outcome"] != "done":
            laps = [lap for lap in laps if lap.get("completed")]
            laps.append({"lap": len(laps) + 1, "completed": False, "dnf_reason": rec["outcome"],
                         "dnf_detail": rec.get("detail", "")})
        out.append({"run_id": spec.run_id, "circuit": circuit_name(spec.circuit), "circuit_arg": spec.circuit,
                    "method": spec.entry.label, "brain": spec.entry.brain, "backend": spec.entry.backend,
                    "model": (doc.get("identity") or {}).get("model", spec.entry.model),
                    "reverse": spec.start.reverse, "start_index": spec.start.index, "start_s": spec.start.s,
                    "repetition": spec.repetition, "outcome": rec["outcome"], "detail": rec.get("detail", ""),
                    "wall_s": rec.get("wall_s"), "folder": folder, "laps": laps,
                    "environment": doc.get("environment")})
    return out


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v))]


def mean_spread(values: Sequence[Any]) -> dict[str, Any]:
    """{mean, spread (sample standard deviation; 0 for one value), n} of the finite values."""
    v = _finite(values)
    if not v:
        return {"mean": None, "spread": None, "n": 0}
    return {"mean": float(np.mean(v)), "spread": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def offline_index(offline_root: str) -> dict[str, dict[str, Any]]:
    """realpath of an artifact -> {size_mb, mse, offline_run} from the newest ``offline.json`` (under
    ``results/offline/<run-id>/``) that evaluated it, when the file there is still the one evaluated
    (same sha256: a retrained or rebuilt artifact at the same path does not inherit old figures)."""
    found: dict[str, dict[str, Any]] = {}
    if not os.path.isdir(offline_root):
        return found
    docs = []
    for name in os.listdir(offline_root):
        doc = read_json(os.path.join(offline_root, name, "offline.json"))
        if doc and isinstance(doc.get("rows"), list):
            docs.append((str(doc.get("time", "")), name, doc))
    digests: dict[str, str] = {}
    for _, name, doc in sorted(docs, key=lambda d: (d[0], d[1])):       # newest last wins
        for row in doc["rows"]:
            try:
                path = os.path.realpath(str(row["path"]))
                mse = float(row["accuracy"]["overall"]["mse"])
                size = int(row["size_bytes"])
                sha = str(row["sha256"])
            except (KeyError, TypeError, ValueError):
                continue
            if path not in digests and os.path.exists(path):
                digests[path] = sha256_path(path)
            if digests.get(path) == sha:
                found[path] = {"size_mb": size / 1e6, "mse": mse, "offline_run": name}
    return found


def summarize(runs: Sequence[Mapping[str, Any]], offline: Mapping[str, Mapping[str, Any]] | None = None
              ) -> list[dict[str, Any]]:
    """One row per (circuit, method), circuits and methods in campaign order: every AGG_METRICS as
    {mean, spread, n} over all laps driven (lap_time over completed laps only), completion counts,
    DNF reasons and the offline size/MSE of the artifact."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["circuit"], r["method"]), []).append(r)
    rows = []
    for (circuit, method), rs in groups.items():
        laps = [lap for r in rs for lap in r["laps"]]
        driven = [lap for lap in laps if lap.get("dnf_reason") not in OUTCOMES[1:]]
        done = [lap for lap in laps if lap.get("completed")]
        row: dict[str, Any] = {"circuit": circuit, "method": method, "brain": rs[0]["brain"],
                               "backend": rs[0]["backend"], "model": rs[0]["model"], "runs": len(rs),
                               "laps": len(laps), "completed": len(done),
                               "dnf": sorted({str(lap.get("dnf_reason")) for lap in laps if not lap.get("completed")})}
        for key in AGG_METRICS:
            row[key] = mean_spread([lap.get(key) for lap in (done if key == "lap_time" else driven)])
        # frames the brain answered with a model output (a bad output is answered by a stop, not by the model)
        counted = [lap for lap in driven if "brain_iterations" in lap]
        row["iterations"] = sum(int(lap["brain_iterations"] or 0) for lap in counted)
        row["bad_outputs_total"] = sum(int(lap.get("bad_outputs") or 0) for lap in counted)
        row["answered"] = row["iterations"] - row["bad_outputs_total"] if counted else None
        off = (offline or {}).get(os.path.realpath(str(row["model"]))) if row["model"] else None
        row["size_mb"] = off["size_mb"] if off else None
        row["offline_mse"] = off["mse"] if off else None
        row["offline_run"] = off["offline_run"] if off else None
        rows.append(row)
    return rows



def targets(rows: Sequence[Mapping[str, Any]], campaign: Campaign) -> list[dict[str, Any]]:
    """Measured vs target per (circuit, method): laps completed, MAE <= 0.30 m, brain frequency
    (camera-bound: answered >= 95 % of frames; keras: 1/iteration time >= 56 it/s), RTF >= 0.98 x target
    (realtime only). ``ok`` None = not applicable: every target of a campaign with ``targets: false``."""
    out = []
    for r in rows:
        items = []
        answered, iterations, bad = r.get("answered"), r.get("iterations"), r.get("bad_outputs_total") or 0
        if answered is not None:
            items.append(("frames answered with a model command", f"{answered} of {iterations} ({bad} bad outputs)",
                          "> 0, no bad output", answered > 0 and bad == 0))
        items.append(("completes laps", f"{r['completed']}/{r['laps']}", "all", r["laps"] > 0 and
                      r["completed"] == r["laps"]))
        mae = r["deviation_mae"]["mean"]
        items.append(("position deviation MAE (m)", "-" if mae is None else f"{mae:.3f}", f"<= {TARGET_MAE_M}",
                      None if mae is None else mae <= TARGET_MAE_M))
        if not camera_bound(r["backend"]):
            f = r["brain_frequency_bm"]["mean"]
            items.append(("brain frequency, 1/iteration time (it/s)", "-" if f is None else f"{f:.1f}",
                          f">= {TARGET_KERAS_IT_S:.0f}", None if f is None else f >= TARGET_KERAS_IT_S))
        else:
            fb, fc = r["brain_frequency_sim"]["mean"], r["camera_fps_sim"]["mean"]
            share = fb / fc if fb is not None and fc else None
            if share is not None and iterations:
                share *= (iterations - bad) / iterations    # a frame answered by a bad output is not answered
            items.append(("camera-bound: frames answered", "-" if share is None else f"{100 * share:.1f} %",
                          f">= {100 * TARGET_FRAME_SHARE:.0f} %", None if share is None else share >= TARGET_FRAME_SHARE))
        rtf = r["real_time_factor"]["mean"]
        if campaign.mode == "realtime":
            goal = TARGET_RTF * campaign.rtf
            items.append(("real time factor", "-" if rtf is None else f"{rtf:.3f}", f">= {goal:.2f}",
                          None if rtf is None else rtf >= goal))
        else:
            items.append(("real time factor", "-" if rtf is None else f"{rtf:.3f}",
                          "n/a (lockstep: as fast as the brain)", None))
        if answered is not None and answered <= 0:
            # a brain that never commanded the car measured nothing: a still car "on the line" meets nothing
            items = [(w, m, t, False if i == 0 or ok is not None else None) for i, (w, m, t, ok) in enumerate(items)]
        if not campaign.targets:
            items = [(w, m, "n/a (smoke campaign: targets: false)", None) for w, m, _, _ in items]
        out.append({"circuit": r["circuit"], "method": r["method"],
                    "items": [{"what": w, "measured": m, "target": t, "ok": ok} for w, m, t, ok in items]})
    return out


