"""The campaign report: report.md, summary.{csv,json}, runs.csv and the plots, written by
:func:`write_report`."""
from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import os
from typing import Any, Mapping, Sequence

from pilotnet_brains import hostinfo
from pilotnet_brains.campaign.aggregate import (
    AGG_METRICS,
    TABLE_HEADER,
    TABLE_METRICS,
    TARGET_RTF,
    collect_runs,
    offline_index,
    summarize,
    targets,
)
from pilotnet_brains.campaign.matrix import RunSpec
from pilotnet_brains.campaign.plots import plot_bars, plot_scatter, plot_trajectories
from pilotnet_brains.campaign.reference import expert_references
from pilotnet_brains.campaign.spec import Campaign
from pilotnet_brains.cpuwait import BUSY_WAIT_SHARE
from pilotnet_brains.reporting import csv_cell, md_table, shown_path, to_json
from pilotnet_brains.util import atomic_write_bytes, atomic_write_text


def _ms(stat: Mapping[str, Any], digits: int) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    m, s = stat["mean"], stat["spread"]
    if digits >= 4 and abs(m) >= 0.01:
        digits = 4
    return f"{m:.{digits}f}" + (f" ± {s:.{digits}f}" if stat.get("n", 0) > 1 else "")


def completed_text(row: Mapping[str, Any]) -> str:
    text = f"{row['completed']}/{row['laps']}"
    if row["dnf"]:
        text += " (DNF " + ", ".join(row["dnf"]) + ")"
    return text


def table_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    cells = [[r["method"]] + [_ms(r[k], d) for k, _, d in TABLE_METRICS] + [
        completed_text(r), "-" if r["size_mb"] is None else f"{r['size_mb']:.2f}",
        "-" if r["offline_mse"] is None else f"{r['offline_mse']:.4g}"] for r in rows]
    return "\n".join(md_table(TABLE_HEADER, cells)) + "\n"


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def expert_text(lap: Mapping[str, Any] | None) -> str:
    """The privileged expert's lap of a circuit (the speed the networks learned from), for scale:
    one of :func:`pilotnet_brains.campaign.reference.expert_references`."""
    if not lap or "error" in lap:
        return f"Expert reference: unavailable ({(lap or {}).get('error', 'not computed')})."
    return (f"Expert reference (privileged pure pursuit on the centerline, commands at 20 Hz, from the start "
            f"pose): {lap['average_speed']:.2f} m/s, lap {lap['lap_time']:.2f} s, deviation MAE "
            f"{lap['deviation_mae']:.3f} m.")


def report_markdown(campaign: Campaign, rows: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                    skipped: Sequence[Mapping[str, str]], pending: int, plots: Mapping[str, list[str]],
                    env: Mapping[str, Any] | None = None, wall_s: float | None = None,
                    experts: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The report's Markdown; ``experts``: circuit name -> the expert's reference lap (see
    :func:`pilotnet_brains.campaign.reference.expert_references`)."""
    mode = (f"realtime, target real-time factor {campaign.rtf:g}" if campaign.mode == "realtime"
            else "lockstep (the simulator waits for each command: deterministic, as fast as the brain answers)")
    starts = campaign.starts
    start_text = ("the circuit's start pose" if not starts.get("random") else
                  f"{starts['random']} seeded random points along the lap (seed {starts['seed']}, direction "
                  f"{starts['direction']}), the same for every method")
    lines = [f"# Benchmark campaign `{campaign.name}`", ""]
    if campaign.description:
        lines += [campaign.description, ""]
    lines += [f"- Machine: {hostinfo.text(env)}",
              f"- Simulator: embedded f1_sim, mode {mode}",
              f"- Laps per run: {campaign.laps}; repetitions: {campaign.repetitions}; starts: {start_text}",
              f"- Inference threads: {campaign.threads}; lap timeout: "
              + (f"{campaign.lap_timeout:g} sim s" if campaign.lap_timeout else "circuit length / 2 m/s (sim s)")
              + f"; run timeout: {campaign.run_timeout or 'auto'} wall s",
              f"- Runs finished: {len(runs)}" + (f", not yet run: {pending}" if pending else "")
              + (f"; wall time of the last invocation {wall_s:.0f} s" if wall_s else "")
              + (f"; the runs' own wall times add up to {sum(float(r.get('wall_s') or 0) for r in runs):.0f} s"
                 if runs else ""),
              f"- Generated {_dt.datetime.now().isoformat(timespec='seconds')} from `{shown_path(campaign.source)}`", ""]
    if skipped:
        lines += ["## Skipped on this machine", ""] + md_table(("Method", "Reason"),
                                                            [(s["label"], s["reason"]) for s in skipped])
        lines.append("")
    by_circuit: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_circuit.setdefault(r["circuit"], []).append(r)
    for circuit, rs in by_circuit.items():
        lines += [f"## {circuit}", "", table_markdown(rs), expert_text((experts or {}).get(circuit)), ""]
        for p in plots.get(circuit, []):
            lines += [f"![{circuit} trajectories]({p})", ""]
    lines += ["Mean ± sample standard deviation over the laps of every repetition and start (no ± with one "
              "lap). Average speed = path length / sim time; position deviation MAE = mean distance (m) of "
              "the car to the red centerline over the odometry samples; BM position deviation = Behavior "
              "Metrics' definition, for each red-line point its distance d to the driven path, mean of "
              "1000^d (1 = perfect; comparable with their published tables); wall contacts = touches of the "
              "car's footprint on the walls; brain frequency = brain iterations per "
              "wall-clock second; real time factor = sim time / wall time; lap time in sim s over "
              "completed laps. DNF reasons: off_track, crashed, stuck, timeout, brain_died, sim_died, "
              "interrupted (from the "
              "metrics node), hung (the run exceeded its wall timeout and was ended), failed (the launch "
              "ended without results). Size and offline MSE (normalized units) come from the newest "
              "`scripts/evaluate_offline` result for the same artifact file, '-' when there is none.", ""]
    for p in plots.get("", []):
        lines += [f"![{os.path.splitext(p)[0]}]({p})", ""]
    lines += machine_load_lines(runs, campaign)
    lines += ["## Targets (measured vs target; reported, not asserted)", ""]
    lines += md_table(("Circuit", "Method", "Target", "Measured", "Goal", "Status"),
                      [(t["circuit"], t["method"], it["what"], it["measured"], it["target"], _mark(it["ok"]))
                       for t in targets(rows, campaign) for it in t["items"]])
    lines += ["", "Brain frequency target: camera-bound (the brain answers every camera frame) for every "
              "method but keras, whose 1/iteration time must reach >= 10x the published original PilotNet's "
              "5.6 it/s. Real-time factor target applies to realtime campaigns at target 1.0 "
              f"(>= {TARGET_RTF} x target).", ""]
    return "\n".join(lines)


def machine_load_lines(runs: Sequence[Mapping[str, Any]], campaign: Campaign, listed: int = 10) -> list[str]:
    """The report's word on CPU wait: how long the brains and the simulators waited for a CPU per
    wall second of their laps, and the laps whose brain waited too long to be measured
    (:data:`pilotnet_brains.cpuwait.BUSY_WAIT_SHARE`); nothing when no lap measured it."""
    waits = []
    for r in runs:
        for lap in r["laps"]:
            got = {who: lap.get(f"cpu_wait_{who}") for who in ("brain", "sim")}
            got = {k: float(v) for k, v in got.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}
            if got:
                waits.append((r["run_id"], lap.get("lap"), got))
    if not waits:
        return []
    top = {who: max((g.get(who, 0.0) for _, _, g in waits), default=0.0) for who in ("brain", "sim")}
    busy = [(run, lap, g) for run, lap, g in waits if g.get("brain", 0.0) > BUSY_WAIT_SHARE]
    lines = ["## Machine load", "",
             f"CPU wait (time runnable but not running, per wall second of a lap) over the {len(waits)} lap(s) "
             f"that measured it: at most {100 * top['brain']:.1f} % for a brain, {100 * top['sim']:.1f} % for the "
             f"simulator. "]
    if not busy:
        lines[-1] += f"No brain waited over {100 * BUSY_WAIT_SHARE:.0f} % of a lap."
    else:
        consequence = ("their brain frequency, real time factor and driving may measure the machine as much as "
                       "the brain: if they fell short, run the campaign again with --fresh on a machine that is not "
                       "overloaded" if campaign.mode == "realtime" else
                       "their wall-clock figures (brain frequency, real time factor) may measure the machine as "
                       "much as the brain; lockstep driving is not affected")
        lines[-1] += (f"**In {len(busy)} lap(s) the brain waited over {100 * BUSY_WAIT_SHARE:.0f} %**: "
                      f"{consequence}.")
        lines += [""] + md_table(("Run", "Lap", "Brain CPU wait", "Simulator CPU wait"), [
            (run, lap, *(f"{100 * g[w]:.1f} %" if w in g else "-" for w in ("brain", "sim")))
            for run, lap, g in busy[:listed]])
        if len(busy) > listed:
            lines.append(f"... and {len(busy) - listed} more (runs.csv: cpu_wait_brain, cpu_wait_sim).")
    return lines + [""]


RUNS_CSV_RUN = ("run_id", "circuit", "method", "brain", "backend", "model", "reverse", "start_index", "start_s",
                "repetition", "outcome", "wall_s")
RUNS_CSV_LAP = ("lap", "completed", "dnf_reason", "lap_time", "distance", "percentage", "average_speed",
                "deviation_mae", "deviation_max", "deviation_bm_1000pow", "deviation_bm_mean", "wall_contacts",
                "wall_contact_time", "brain_frequency_wall",
                "brain_frequency_sim", "brain_frequency_bm", "inference_time_mean", "inference_time_p50",
                "inference_time_p99", "real_time_factor", "camera_fps_sim", "brain_iterations", "skipped_frames",
                "bad_frames", "bad_outputs", "suddenness", "cpu_wait_brain", "cpu_wait_sim", "dnf_detail")


def runs_csv(runs: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RUNS_CSV_RUN + RUNS_CSV_LAP)
    for r in runs:
        run = dict(r, model=shown_path(r["model"]) if r.get("model") else r.get("model"))
        for lap in r["laps"]:
            w.writerow([csv_cell(run.get(k)) for k in RUNS_CSV_RUN] + [csv_cell(lap.get(k)) for k in RUNS_CSV_LAP])
    return buf.getvalue()


def summary_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["circuit", "method", "brain", "backend", "model", "runs", "laps", "completed", "dnf"]
    for k in AGG_METRICS:
        head += [f"{k}_mean", f"{k}_spread", f"{k}_n"]
    head += ["size_mb", "offline_mse"]
    w.writerow(head)
    for r in rows:
        cells = [shown_path(r[k]) if k == "model" and r[k] else r[k] for k in head[:8]] + [";".join(r["dnf"])]
        for k in AGG_METRICS:
            cells += [csv_cell(r[k]["mean"]), csv_cell(r[k]["spread"]), r[k]["n"]]
        cells += [csv_cell(r["size_mb"]), csv_cell(r["offline_mse"])]
        w.writerow(cells)
    return buf.getvalue()


def write_report(campaign_dir: str, campaign: Campaign, specs: Sequence[RunSpec], skipped: Sequence[Mapping[str, str]],
                 offline_root: str | None = None, plots: bool = True, wall_s: float | None = None
                 ) -> dict[str, Any]:
    """Aggregate the finished runs into report.md, summary.{csv,json}, runs.csv and the plots (all
    written atomically), with the expert's reference lap of each circuit driven (cached in the
    campaign folder). Returns the summary document."""
    runs = collect_runs(campaign_dir, specs)
    rows = summarize(runs, offline_index(offline_root) if offline_root else None)
    experts = expert_references(campaign_dir, [c for c in campaign.circuits if any(r["circuit_arg"] == c for r in runs)])
    env = next((r["environment"] for r in runs if r.get("environment")), None)
    figs: dict[str, list[str]] = {}
    if plots and runs:
        for circuit in campaign.circuits:
            rs = [r for r in runs if r["circuit_arg"] == circuit]
            if rs:
                name = f"trajectories_{rs[0]['circuit']}.png"
                atomic_write_bytes(os.path.join(campaign_dir, name), plot_trajectories(circuit, rs))
                figs.setdefault(rs[0]["circuit"], []).append(name)
        if rows:
            atomic_write_bytes(os.path.join(campaign_dir, "inference_frequency.png"), plot_bars(rows))
            atomic_write_bytes(os.path.join(campaign_dir, "deviation_vs_inference.png"), plot_scatter(rows))
            figs[""] = ["inference_frequency.png", "deviation_vs_inference.png"]
    pending = len(specs) - len(runs)
    doc = {"campaign": campaign.to_dict(), "generated": _dt.datetime.now().isoformat(timespec="seconds"),
           "environment": env, "wall_s": wall_s, "pending": pending, "skipped": list(skipped),
           "summary": rows, "targets": targets(rows, campaign), "expert_reference": experts,
           "runs": [{k: v for k, v in r.items() if k not in ("environment",)} for r in runs]}
    atomic_write_text(os.path.join(campaign_dir, "summary.json"), to_json(doc, indent=1))
    atomic_write_text(os.path.join(campaign_dir, "summary.csv"), summary_csv(rows))
    atomic_write_text(os.path.join(campaign_dir, "runs.csv"), runs_csv(runs))
    atomic_write_text(os.path.join(campaign_dir, "report.md"),
                      report_markdown(campaign, rows, runs, skipped, pending, figs, env, wall_s, experts))
    return doc
