"""The expert's reference lap per circuit, for scale in the report: simulated once per circuit
geometry and kept in the campaign folder (``expert_reference.json``), so rewriting a report does
not drive the expert again."""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from typing import Any, Sequence

import numpy as np

from pilotnet_brains.campaign.runner import read_json
from pilotnet_brains.circuits import Circuit, load_circuit
from pilotnet_brains.expert import ExpertConfig, expert_lap
from pilotnet_brains.reporting import to_json
from pilotnet_brains.util import atomic_write_text

REFERENCE_FILE = "expert_reference.json"
#: The expert's command rate (Hz): the camera's.
EXPERT_RATE = 20.0
#: The lap metrics kept for the report.
REFERENCE_FIELDS = ("completed", "dnf_reason", "lap_time", "distance", "path_length", "average_speed",
                    "deviation_mae", "deviation_max", "deviation_bm_1000pow", "wall_contacts")


def reference_key(circuit: Circuit) -> str:
    """What the expert's lap depends on: the circuit's geometry (red line, start pose, road, walls)
    and the expert's settings."""
    h = hashlib.sha256(np.ascontiguousarray(circuit.polyline).tobytes())
    h.update(repr((circuit.start_pose, circuit.road_width, circuit.wall_height, asdict(ExpertConfig()),
                   EXPERT_RATE)).encode())
    return h.hexdigest()[:20]


def expert_references(campaign_dir: str, circuits: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Circuit name -> the expert's lap (:data:`REFERENCE_FIELDS`), or {"error": why not}: taken from
    the campaign folder's :data:`REFERENCE_FILE` where its key matches the circuit, else driven
    (:func:`pilotnet_brains.expert.expert_lap`) and stored there."""
    path = os.path.join(campaign_dir, REFERENCE_FILE)
    cache = read_json(path) or {}
    out: dict[str, dict[str, Any]] = {}
    stored = False
    for arg in circuits:
        try:
            c = load_circuit(arg)
            key = reference_key(c)
            entry = cache.get(c.name)
            if not isinstance(entry, dict) or entry.get("key") != key:
                lap = expert_lap(c, rate=EXPERT_RATE)
                entry = cache[c.name] = {"key": key, "lap": {k: lap[k] for k in REFERENCE_FIELDS}}
                stored = True
            out[c.name] = entry["lap"]
        except (OSError, ValueError) as e:
            out[os.path.splitext(os.path.basename(arg))[0]] = {"error": str(e)}
    if stored:
        atomic_write_text(path, to_json(cache, indent=1))
    return out
