"""The checks a run passes before any node starts (``scripts/check_run``, run by circuit.launch).

``roslaunch`` exits 0 once its nodes have started, whatever they do; only a launch that fails while
it is being read exits non-zero. circuit.launch therefore runs :func:`check_run` as a ``<param
command=...>``: an argument the nodes would refuse (circuit, simulator mode, rtf, start_s, laps,
timeout, brain, backend, model, results_dir, run_id) ends roslaunch with exit code 1 and one message,
before anything ran. Every check is the one the refusing node makes (the same constructors), so
the two cannot disagree. A refused run whose folder is free records ``status: refused`` and the
message in ``<results_dir>/<run_id>/laps.json``, so every refusal leaves the same record.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable, Mapping

from pilotnet_brains import hostinfo
from pilotnet_brains.params import BrainParams, SimParams, read_params
from pilotnet_brains.results import (
    RunFolderError,
    RunWriter,
    check_run_folder,
    claim_run_folder,
    make_run_id,
    method_label,
)


class RunRefused(ValueError):
    """A run that must not start; ``by`` names what refused it (circuit, sim, metrics, brain, run folder)."""

    def __init__(self, by: str, message: str):
        super().__init__(message)
        self.by = by


def check_start_s(circuit: Any, start_s: float) -> None:
    """``start_s`` (m along the lap; < 0 = the circuit's start pose) must lie on the lap."""
    if start_s >= circuit.length:
        raise ValueError(f"start_s {start_s:g} m is beyond the lap of {circuit.name} ({circuit.length:.1f} m); "
                         f"pass 0 <= start_s < {circuit.length:.1f}, or -1 for the circuit's start pose")


def _circuit(a: Mapping[str, Any]):
    from pilotnet_brains.circuits import load_circuit

    c = load_circuit(str(a["circuit"]))
    check_start_s(c, read_params(SimParams(), a.get).start_s)
    return c


def _sim(a: Mapping[str, Any]) -> None:
    if a.get("sim", "builtin") == "builtin":
        read_params(SimParams(), a.get).check()


def _metrics(a: Mapping[str, Any]) -> None:
    from pilotnet_brains.metrics import LapLimits

    read_params(LapLimits(), a.get).check()


def _brain(a: Mapping[str, Any]) -> None:
    from pilotnet_brains.brain import BRAINS, make_brain

    p = read_params(BrainParams(), a.get)
    if p.brain not in BRAINS:
        raise ValueError(f"unknown brain {p.brain!r}; choose one of {sorted(BRAINS)}")
    make_brain(p.brain, **p.brain_kwargs())


def _results_dir(a: Mapping[str, Any]) -> str:
    """The run folder's parent as the metrics node resolves it: results_dir, or when empty the
    package's results folder (a user-writable one for an installed package)."""
    from pilotnet_brains import results_root

    return os.path.realpath(os.path.expanduser(str(a.get("results_dir", "") or "") or results_root()))


def _folder(a: Mapping[str, Any]) -> None:
    check_run_folder(_results_dir(a), str(a.get("run_id", "") or ""))


#: What is checked, in order: (who refuses, check). The run folder comes first: a run whose
#: folder cannot be its own records nothing anywhere.
CHECKS: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...] = (
    ("run folder", _folder), ("circuit", _circuit), ("f1_sim", _sim), ("lap_metrics", _metrics),
    ("brain", _brain))


def check_run(args: Mapping[str, Any]) -> None:
    """Raise :class:`RunRefused` (who, and the message naming the argument and what to do) for the
    first check ``args`` (circuit.launch's arguments) fails."""
    for by, check in CHECKS:
        try:
            check(args)
        except RunRefused:
            raise
        except (ValueError, OSError, RuntimeError, KeyError) as e:
            raise RunRefused(by, str(e).strip() or type(e).__name__) from None


def record_refusal(args: Mapping[str, Any], refused: RunRefused) -> str | None:
    """Write ``status: refused`` and the message into the run's folder; None when the folder itself
    was the problem (then nothing is written anywhere)."""
    if refused.by == "run folder":
        return None
    given = str(args.get("run_id", "") or "")
    brain, backend = str(args.get("brain", "")), str(args.get("backend", ""))
    circuit = os.path.splitext(os.path.basename(str(args.get("circuit", ""))))[0]
    try:
        folder = claim_run_folder(_results_dir(args), given or make_run_id(circuit, method_label(brain, backend)),
                                  unique=not given)
    except RunFolderError:
        return None
    identity = {"run_id": os.path.basename(folder), "circuit": circuit, "brain": brain, "backend": backend,
                "model": str(args.get("model", "")), "sim": str(args.get("sim", "")), "mode": str(args.get("mode", "")),
                "threads": args.get("threads", 1), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "host": socket.gethostname()}
    RunWriter(folder, identity, hostinfo.describe()).write_json(
        [], None, "refused", extra={"refusal": {"by": refused.by, "message": str(refused)}})
    return folder
