"""The run matrix: starts, one RunSpec (launch args, run id) per run, and run timeouts."""
from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from pilotnet_brains.campaign.spec import Campaign, CampaignError, Entry, arg_str
from pilotnet_brains.circuits import REVERSE_SUFFIX, load_circuit

#: Wall seconds a run gets to start (master, nodes, model load) in the automatic run timeout.
STARTUP_ALLOWANCE = 120.0


@dataclass(frozen=True)
class Start:
    """Where a run starts: ``s`` None = the circuit's start pose, else the centerline arc length (m) of
    the (possibly reversed) circuit."""

    index: int
    reverse: bool = False
    s: float | None = None

    @property
    def tag(self) -> str:
        if self.s is None and not self.reverse:
            return "start"
        return f"{'rev' if self.reverse else 'fwd'}{self.index}" if self.s is not None else "revstart"


def circuit_starts(circuit: str, starts: Mapping[str, Any]) -> list[Start]:
    """The starts on one circuit: the same for every backend and repetition (seeded by the campaign
    seed and the circuit's name only)."""
    n = int(starts.get("random", 0))
    if n <= 0:
        return [Start(0)]
    direction = str(starts.get("direction", "forward"))
    length = load_circuit(circuit).length
    rng = np.random.default_rng([int(starts.get("seed", 0)), zlib.crc32(os.path.basename(circuit).encode())])
    out = []
    for i in range(n):
        s = float(rng.uniform(0.0, length))
        rev = bool(rng.integers(2)) if direction == "both" else direction == "reverse"
        out.append(Start(i, rev, round(s, 3)))
    return out


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    circuit: str
    start: Start
    entry: Entry
    repetition: int
    args: tuple[tuple[str, str], ...]    # circuit.launch args (results_dir excluded)

    @property
    def launch_args(self) -> dict[str, str]:
        return dict(self.args)

    def key(self) -> str:
        """Identity of what the run measures: its launch args and the artifact's size and mtime (a
        rebuilt model or an edited campaign makes a finished run stale)."""
        h = hashlib.sha256(json.dumps(self.args).encode())
        model = entry_model(self.entry)
        if model and os.path.exists(model):
            st = os.stat(model)
            h.update(f"{model}:{st.st_size}:{int(st.st_mtime)}".encode())
        return h.hexdigest()[:16]


def entry_model(entry: Entry) -> str:
    """The artifact path a run loads: the entry's, else its backend's default ("" for the explicit brain)."""
    if entry.model or not entry.backend:
        return entry.model
    from pilotnet_brains.backends import BACKENDS

    return BACKENDS[entry.backend].default_path


def circuit_name(circuit: str) -> str:
    return load_circuit(circuit).name


def run_timeout(campaign: Campaign, circuit: str) -> float:
    """Wall s before a run counts as hung: the campaign's, or STARTUP_ALLOWANCE + 3 x laps x lap
    timeout (sim s) / rtf (lockstep: rtf 1, a brain slower than real time still finishes)."""
    if campaign.run_timeout:
        return float(campaign.run_timeout)
    from pilotnet_brains.metrics import LapLimits

    lap = LapLimits(timeout=campaign.lap_timeout).lap_timeout(load_circuit(circuit).length)
    rtf = campaign.rtf if campaign.mode == "realtime" else 1.0
    return STARTUP_ALLOWANCE + 3.0 * campaign.laps * lap / min(rtf, 1.0)


def expand(campaign: Campaign, entries: Sequence[Entry]) -> list[RunSpec]:
    """Every run, ordered circuit -> start -> repetition -> method (so a partial campaign compares
    all methods on what it did)."""
    runs = []
    for circuit in campaign.circuits:
        cname = circuit_name(circuit)
        for start in circuit_starts(circuit, campaign.starts):
            for rep in range(1, campaign.repetitions + 1):
                for e in entries:
                    # the direction travels in the circuit's name (<circuit>_reverse), so every node agrees
                    args = {"circuit": circuit + (REVERSE_SUFFIX if start.reverse else ""), "mode": campaign.mode,
                            "rtf": arg_str(campaign.rtf),
                            "seed": str(campaign.seed + rep - 1), "headless": "true", "brain": e.brain,
                            "backend": e.backend, "model": entry_model(e), "threads": str(campaign.threads),
                            "laps": str(campaign.laps), "timeout": arg_str(campaign.lap_timeout),
                            "brain_timeout": arg_str(campaign.brain_timeout),
                            "record": arg_str(campaign.record),
                            "record_camera_every": str(campaign.record_camera_every),
                            "start_s": "-1" if start.s is None else repr(start.s)}
                    args.update(campaign.launch_args)
                    run_id = re.sub(r"[^A-Za-z0-9._+-]+", "-", f"{cname}_{start.tag}_{e.label}_r{rep}")
                    args["run_id"] = run_id
                    runs.append(RunSpec(run_id, circuit, start, e, rep, tuple(sorted(args.items()))))
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise CampaignError(f"{campaign.source}: two runs would share a folder name; are two circuits "
                            f"named alike? ({sorted({i for i in ids if ids.count(i) > 1})[:3]})")
    return runs

