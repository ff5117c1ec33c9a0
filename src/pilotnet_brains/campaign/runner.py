"""Resume bookkeeping: each run's folder and ``campaign_run.json`` record, and what a launch's
``laps.json`` says about the run."""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict
from typing import Any, Mapping, Sequence

from pilotnet_brains.campaign.matrix import RunSpec
from pilotnet_brains.util import atomic_write_text

#: Outcomes of a run recorded in ``campaign_run.json``. Final ones are skipped on resume.
OUTCOMES = ("done", "hung", "failed")
RUN_RECORD = "campaign_run.json"


def runs_dir(campaign_dir: str) -> str:
    return os.path.join(campaign_dir, "runs")


def run_folder(campaign_dir: str, spec: RunSpec) -> str:
    return os.path.join(runs_dir(campaign_dir), spec.run_id)


def read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_run_record(folder: str, spec: RunSpec, outcome: str, wall_s: float, returncode: int | None,
                     detail: str = "", log: str = "", extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The campaign's record of a run (written last: its presence with a final outcome marks the run done);
    ``extra``: more fields (e.g. the Ray node that ran it)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r}: one of {OUTCOMES}")
    rec = {"run_id": spec.run_id, "key": spec.key(), "outcome": outcome, "detail": detail,
           "wall_s": round(float(wall_s), 3), "returncode": returncode, "log": log,
           "finished": _dt.datetime.now().isoformat(timespec="seconds"),
           "circuit": spec.circuit, "start": asdict(spec.start), "entry": asdict(spec.entry),
           "repetition": spec.repetition, "launch_args": spec.launch_args, **(extra or {})}
    os.makedirs(folder, exist_ok=True)          # a run refused before its metrics node made it
    atomic_write_text(os.path.join(folder, RUN_RECORD), json.dumps(rec, indent=1) + "\n")
    return rec


def is_finished(campaign_dir: str, spec: RunSpec, retry: Sequence[str] = ()) -> bool:
    """True when the run has a final record for the same key (and, for ``done``, a final laps.json);
    outcomes listed in ``retry`` (e.g. hung, failed) count as not finished."""
    folder = run_folder(campaign_dir, spec)
    rec = read_json(os.path.join(folder, RUN_RECORD))
    if not rec or rec.get("key") != spec.key() or rec.get("outcome") not in OUTCOMES or rec["outcome"] in retry:
        return False
    if rec["outcome"] == "done":
        laps = read_json(os.path.join(folder, "laps.json"))
        return bool(laps) and laps.get("status") == "done"
    return True


def classify(laps_doc: Mapping[str, Any] | None, returncode: int | None) -> tuple[str, str]:
    """(outcome, detail) of a run whose launch exited by itself."""
    if laps_doc is None:
        return "failed", f"no laps.json (the launch exited {returncode} before the metrics node wrote one)"
    status = laps_doc.get("status")
    if status == "done":
        return "done", ""
    if status == "refused":
        refusal = laps_doc.get("refusal") or {}
        return "failed", f"refused by {refusal.get('by', '?')}: {refusal.get('message', '')} (launch exit code {returncode})"
    return "failed", f"laps.json status {status!r} (launch exit code {returncode})"


def lap_progress(laps_doc: Mapping[str, Any] | None, laps: int) -> str:
    """Short progress text of a running run from its partial laps.json: 'lap 1/2 37%'."""
    if not laps_doc:
        return "starting"
    done = len(laps_doc.get("laps") or [])
    cur = laps_doc.get("in_progress")
    if cur:
        pct = cur.get("percentage")
        return f"lap {min(done + 1, laps)}/{laps} {float(pct):.0f}%" if isinstance(pct, (int, float)) \
            else f"lap {done + 1}/{laps}"
    status = laps_doc.get("status")
    if status == "waiting":
        return "waiting for the brain"
    if status == "running" and done < laps:
        return f"lap {done + 1}/{laps} starting"
    return f"lap {done}/{laps} done"

