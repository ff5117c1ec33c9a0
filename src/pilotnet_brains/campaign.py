"""Online benchmark campaigns without ROS: the campaign file, the run matrix, resume bookkeeping and
the combined report (tables, CSV/JSON, plots). ``scripts/benchmark`` (:mod:`pilotnet_brains.cli.benchmark`)
runs the matrix, one isolated ``circuit.launch`` per run, and calls :func:`write_report`.

Campaign file (``config/benchmarks/<name>.yaml``; every key but ``circuits`` optional)::

    name: default                 # report folder results/benchmarks/<name>/ (default: the file name)
    description: every CPU backend on the three evaluation circuits
    backends: all                 # "all": the explicit brain + every backend of the registry (those
                                  # that cannot run here are listed as skipped, with the reason), or a
                                  # list of: explicit | <backend name> (its default artifact)
                                  # | {backend: <name>, model: <path>, label: <table name>}
    circuits: [simple_circuit, montreal, montmelo]   # names (config/circuits/) or .yaml paths
    laps: 1                       # laps per run (a DNF ends the run)
    repetitions: 1                # runs per (circuit, start, backend)
    mode: lockstep                # lockstep (deterministic, as fast as the brain) | realtime
    rtf: 1.0                      # realtime: target real-time factor
    starts: circuit               # the circuit's start pose, or
                                  # {random: N, seed: 0, direction: forward | reverse | both}: N seeded
                                  # points along the lap, the same for every backend
    timeouts: {lap: 0, run: auto, brain: 5.0}   # lap: sim s per lap (0 = length / 2 m/s);
                                  # run: wall s before a run is DNF "hung" (auto: see run_timeout);
                                  # brain: wall s without brain output before DNF brain_died
    record: false                 # rosbag per run (record_camera_every: keep every Nth frame)
    threads: 1                    # inference threads
    seed: 0                       # simulator seed (+ repetition index)
    launch_args: {}               # extra circuit.launch args for every run (e.g. camera_rate: 20)
    targets: true                 # false: a smoke campaign; the report lists its targets as n/a

Layout of ``results/benchmarks/<name>/``: ``runs/<run-id>/`` (the metrics node's run folder plus
``campaign_run.json``, this module's record of the run's outcome), ``logs/<run-id>.log``, and the
report: ``report.md``, ``summary.csv``/``summary.json`` (per circuit x method), ``runs.csv`` (per
lap), ``trajectories_<circuit>.png``, ``inference_frequency.png``, ``deviation_vs_inference.png``.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from pilotnet_brains import package_root
from pilotnet_brains.backends.registry import camera_bound
from pilotnet_brains.circuits import REVERSE_SUFFIX, CircuitError, load_circuit
from pilotnet_brains.results import METRIC_TITLES
from pilotnet_brains.util import atomic_write_bytes, atomic_write_text, resolve_yaml, sha256_path

#: Where campaign files live; a bare name resolves to ``<name>.yaml`` there.
CAMPAIGNS_DIR = os.path.join(os.path.realpath(package_root()), "config", "benchmarks")
#: The explicit (classical) brain's entry name: needs no model.
EXPLICIT = "explicit"
MODES = ("lockstep", "realtime")
DIRECTIONS = ("forward", "reverse", "both")
#: Outcomes of a run recorded in ``campaign_run.json``. Final ones are skipped on resume.
OUTCOMES = ("done", "hung", "failed")
RUN_RECORD = "campaign_run.json"
#: Wall seconds a run gets to start (master, nodes, model load) in the automatic run timeout.
STARTUP_ALLOWANCE = 120.0

_KEYS = ("name", "description", "backends", "circuits", "laps", "repetitions", "mode", "rtf", "starts",
         "timeouts", "record", "record_camera_every", "threads", "seed", "launch_args", "targets")
_TIMEOUT_KEYS = ("lap", "run", "brain")
#: Launch args the campaign sets itself (launch_args may not override them).
_RESERVED_ARGS = ("circuit", "mode", "rtf", "brain", "backend", "model", "threads", "laps", "timeout",
                  "results_dir", "run_id", "record", "record_camera_every", "reverse", "start_s", "seed",
                  "headless", "brain_timeout")


class CampaignError(ValueError):
    """A campaign file or its contents are invalid; the message names the file and the fix."""


# ---------------------------------------------------------------------------------- the campaign
@dataclass(frozen=True)
class Entry:
    """One method of the campaign: a brain (+ backend and model for PilotNet)."""

    label: str          # how it is named in tables and run ids
    brain: str          # explicit | pilotnet
    backend: str = ""   # registry name ("" for the explicit brain)
    model: str = ""     # artifact path ("" = the backend's default artifact)


@dataclass
class Campaign:
    name: str
    circuits: list[str]
    backends: Any = "all"                 # "all" or a list of Entry
    description: str = ""
    laps: int = 1
    repetitions: int = 1
    mode: str = "lockstep"
    rtf: float = 1.0
    starts: dict[str, Any] = field(default_factory=lambda: {"random": 0, "seed": 0, "direction": "forward"})
    lap_timeout: float = 0.0              # sim s, 0 = circuit length / 2 m/s (the metrics default)
    run_timeout: float | None = None   # wall s, None = auto
    brain_timeout: float = 5.0            # wall s
    record: bool = False
    record_camera_every: int = 10
    threads: int = 1
    seed: int = 0
    launch_args: dict[str, str] = field(default_factory=dict)
    targets: bool = True                  # false: a smoke campaign, whose targets are not applicable
    source: str = "<dict>"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["backends"] = self.backends if isinstance(self.backends, str) else [asdict(e) for e in self.backends]
        return d


def campaign_path(name_or_path: str) -> str:
    """A campaign name (``tiny``) or a path to a ``.yaml`` file -> absolute path."""
    return resolve_yaml(name_or_path, CAMPAIGNS_DIR, "campaign", CampaignError)


def load_campaign(name_or_path: str) -> Campaign:
    """Read and validate a campaign file (see the module doc for the format)."""
    import yaml

    path = campaign_path(name_or_path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise CampaignError(f"{path}: not valid YAML: {e}") from None
    return parse_campaign(data, source=path)


def _num(data: Mapping[str, Any], key: str, source: str, kind: Callable, minimum: float, default: Any,
         strict: bool = False):
    v = data.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()):
        raise CampaignError(f"{source}: {key} must be {'an integer' if kind is int else 'a number'}, got {v!r}")
    v = kind(v)
    if (v <= minimum) if strict else (v < minimum):
        raise CampaignError(f"{source}: {key} must be {'>' if strict else '>='} {minimum}, got {v}")
    return v


def _parse_entry(item: Any, i: int, source: str) -> Entry:
    if isinstance(item, str):
        item = {"backend": item}
    if not isinstance(item, dict):
        raise CampaignError(f"{source}: backends[{i}] must be a name or a mapping "
                            f"{{backend: <name>, model: <path>, label: <name>}}, got {item!r}")
    unknown = sorted(set(item) - {"backend", "model", "label"})
    if unknown:
        raise CampaignError(f"{source}: backends[{i}]: unknown keys {unknown}; allowed: backend, model, label")
    name = str(item.get("backend") or "")
    if not name:
        raise CampaignError(f"{source}: backends[{i}] needs a backend name (or 'explicit')")
    model = os.path.expanduser(str(item.get("model") or ""))
    if model and not os.path.isabs(model) and source != "<dict>":
        base = os.path.dirname(source)
        model = model if os.path.exists(model) else os.path.normpath(os.path.join(base, model))
    label = str(item.get("label") or name)
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", label):
        raise CampaignError(f"{source}: backends[{i}]: label {label!r} may only use letters, digits and ._+-")
    if name == EXPLICIT:
        if model:
            raise CampaignError(f"{source}: backends[{i}]: the explicit brain takes no model")
        return Entry(label, EXPLICIT)
    from pilotnet_brains.backends import BACKENDS

    if name not in BACKENDS:
        raise CampaignError(f"{source}: backends[{i}]: unknown backend {name!r}; valid: explicit, "
                            f"{', '.join(BACKENDS)}")
    return Entry(label, "pilotnet", name, os.path.abspath(model) if model else "")


def parse_campaign(data: Any, source: str = "<dict>") -> Campaign:
    """Validate a parsed campaign mapping; every problem raises :class:`CampaignError` naming ``source``."""
    if not isinstance(data, dict):
        raise CampaignError(f"{source}: a campaign file must be a YAML mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise CampaignError(f"{source}: unknown keys {unknown}; allowed keys: {list(_KEYS)}")
    default_name = os.path.splitext(os.path.basename(source))[0] if source != "<dict>" else "campaign"
    name = str(data.get("name") or default_name)
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise CampaignError(f"{source}: name {name!r} may only use letters, digits and ._+- (it names a folder)")

    circuits = data.get("circuits")
    if isinstance(circuits, str):
        circuits = [circuits]
    if not isinstance(circuits, list) or not circuits or not all(isinstance(c, str) and c for c in circuits):
        raise CampaignError(f"{source}: circuits must be a non-empty list of circuit names or .yaml paths, "
                            f"got {circuits!r}")
    for c in circuits:
        try:
            load_circuit(c)
        except CircuitError as e:
            raise CampaignError(f"{source}: circuits: {e}") from None
    if len(set(circuits)) != len(circuits):
        raise CampaignError(f"{source}: circuits lists a circuit twice: {circuits}")

    backends = data.get("backends", "all")
    if isinstance(backends, str) and backends.strip().lower() in ("all", "all available here"):
        backends = "all"
    elif isinstance(backends, list) and backends:
        backends = [_parse_entry(b, i, source) for i, b in enumerate(backends)]
        labels = [e.label for e in backends]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise CampaignError(f"{source}: backends: label(s) {dup} used twice; give each entry its own label:")
    else:
        raise CampaignError(f"{source}: backends must be 'all' or a non-empty list, got {backends!r}")

    mode = str(data.get("mode", "lockstep"))
    if mode not in MODES:
        raise CampaignError(f"{source}: mode must be one of {list(MODES)}, got {mode!r}")

    starts = data.get("starts", "circuit")
    if starts in (None, "circuit"):
        starts = {"random": 0, "seed": 0, "direction": "forward"}
    elif isinstance(starts, dict):
        bad = sorted(set(starts) - {"random", "seed", "direction"})
        if bad or "random" not in starts:
            raise CampaignError(f"{source}: starts must be 'circuit' or {{random: N, seed: S, direction: "
                                f"forward|reverse|both}}, got {starts!r}")
        starts = {"random": _num(starts, "random", source + ": starts", int, 1, None),
                  "seed": _num(starts, "seed", source + ": starts", int, 0, 0),
                  "direction": str(starts.get("direction", "forward"))}
        if starts["direction"] not in DIRECTIONS:
            raise CampaignError(f"{source}: starts.direction must be one of {list(DIRECTIONS)}, "
                                f"got {starts['direction']!r}")
    else:
        raise CampaignError(f"{source}: starts must be 'circuit' or a mapping {{random: N, seed: S, "
                            f"direction: forward|reverse|both}}, got {starts!r}")

    timeouts = data.get("timeouts") or {}
    if not isinstance(timeouts, dict) or set(timeouts) - set(_TIMEOUT_KEYS):
        raise CampaignError(f"{source}: timeouts must be a mapping with keys among {list(_TIMEOUT_KEYS)}, "
                            f"got {timeouts!r}")
    run_timeout = timeouts.get("run", "auto")
    if run_timeout in (None, "auto"):
        run_timeout = None
    else:
        run_timeout = _num(timeouts, "run", source + ": timeouts", float, 0.0, None, strict=True)

    launch_args = data.get("launch_args") or {}
    if not isinstance(launch_args, dict):
        raise CampaignError(f"{source}: launch_args must be a mapping of circuit.launch args, got {launch_args!r}")
    clash = sorted(set(launch_args) & set(_RESERVED_ARGS))
    if clash:
        raise CampaignError(f"{source}: launch_args {clash} are set by the campaign itself; use the "
                            f"campaign keys (laps, mode, timeouts...) instead")
    record = data.get("record", False)
    if not isinstance(record, bool):
        raise CampaignError(f"{source}: record must be true or false, got {record!r}")
    with_targets = data.get("targets", True)
    if not isinstance(with_targets, bool):
        raise CampaignError(f"{source}: targets must be true or false, got {with_targets!r}")

    return Campaign(
        name=name, circuits=list(circuits), backends=backends, description=str(data.get("description") or ""),
        laps=_num(data, "laps", source, int, 1, 1), repetitions=_num(data, "repetitions", source, int, 1, 1),
        mode=mode, rtf=_num(data, "rtf", source, float, 0.0, 1.0, strict=True), starts=starts,
        lap_timeout=_num(timeouts, "lap", source + ": timeouts", float, 0.0, 0.0),
        run_timeout=run_timeout,
        brain_timeout=_num(timeouts, "brain", source + ": timeouts", float, 0.0, 5.0, strict=True),
        record=record, record_camera_every=_num(data, "record_camera_every", source, int, 0, 10),
        threads=_num(data, "threads", source, int, 1, 1), seed=_num(data, "seed", source, int, 0, 0),
        launch_args={str(k): _arg_str(v) for k, v in launch_args.items()}, targets=with_targets, source=source)


def _arg_str(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


# ---------------------------------------------------------------------------------- backends
def entry_availability(entry: Entry) -> str:
    """"" if this machine can run the entry, else why not (GPU, runtime, artifact not built)."""
    if entry.brain == EXPLICIT:
        return ""

    from pilotnet_brains.backends import BACKENDS, build_hint

    spec = BACKENDS[entry.backend]
    reason = spec.missing()
    if reason:
        return f"cannot run on this machine: {reason}"
    from pilotnet_brains.backends.registry import missing_module

    missing = missing_module(spec)
    if missing:
        return f"runtime module {missing} not installed (pip install {spec.pip})"
    path = entry.model or spec.default_path
    if not os.path.exists(path):
        return f"artifact {path} not built; {build_hint(spec)}"
    return ""


def all_entries() -> list[Entry]:
    """The explicit brain and every registry backend with its default artifact."""
    from pilotnet_brains.backends import BACKENDS

    return [Entry(EXPLICIT, EXPLICIT)] + [Entry(name, "pilotnet", name) for name in BACKENDS]


def resolve_entries(campaign: Campaign, availability: Callable[[Entry], str] = entry_availability
                    ) -> tuple[list[Entry], list[dict[str, str]]]:
    """(entries that run here, [{label, backend, model, reason}] of those skipped)."""
    entries = all_entries() if campaign.backends == "all" else list(campaign.backends)
    run, skipped = [], []
    for e in entries:
        reason = availability(e)
        if reason:
            skipped.append({"label": e.label, "backend": e.backend or e.brain, "model": e.model, "reason": reason})
        else:
            run.append(e)
    return run, skipped


# ---------------------------------------------------------------------------------- the run matrix
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
                            "rtf": _arg_str(campaign.rtf),
                            "seed": str(campaign.seed + rep - 1), "headless": "true", "brain": e.brain,
                            "backend": e.backend, "model": entry_model(e), "threads": str(campaign.threads),
                            "laps": str(campaign.laps), "timeout": _arg_str(campaign.lap_timeout),
                            "brain_timeout": _arg_str(campaign.brain_timeout),
                            "record": _arg_str(campaign.record),
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


# ---------------------------------------------------------------------------------- resume bookkeeping
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
                     detail: str = "", log: str = "") -> dict[str, Any]:
    """The campaign's record of a run (written last: its presence with a final outcome marks the run done)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r}: one of {OUTCOMES}")
    rec = {"run_id": spec.run_id, "key": spec.key(), "outcome": outcome, "detail": detail,
           "wall_s": round(float(wall_s), 3), "returncode": returncode, "log": log,
           "finished": _dt.datetime.now().isoformat(timespec="seconds"),
           "circuit": spec.circuit, "start": asdict(spec.start), "entry": asdict(spec.entry),
           "repetition": spec.repetition, "launch_args": spec.launch_args}
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


# ---------------------------------------------------------------------------------- report data
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
    "inference_time_p99", "skipped_frames", "bad_frames", "bad_outputs", "distance")
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
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "| " + " | ".join("---" for _ in TABLE_HEADER) + " |"]
    for r in rows:
        cells = [r["method"]] + [_ms(r[k], d) for k, _, d in TABLE_METRICS] + [
            completed_text(r), "-" if r["size_mb"] is None else f"{r['size_mb']:.2f}",
            "-" if r["offline_mse"] is None else f"{r['offline_mse']:.4g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def machine_text(env: Mapping[str, Any] | None) -> str:
    if not env:
        return "unknown (no run finished)"
    libs = env.get("libraries") or {}
    lib = ", ".join(f"{k} {v}" for k, v in libs.items())
    return (f"{env.get('cpu')} ({env.get('cpu_count')} cores), Python {env.get('python')}, {env.get('platform')}, "
            f"ROS {env.get('ros_distro') or '?'}; {lib}")


def expert_text(circuit: str) -> str:
    """The privileged expert's lap of ``circuit`` (the speed the networks learned from), for scale."""
    from pilotnet_brains.expert import expert_lap

    try:
        lap = expert_lap(circuit)
    except (OSError, ValueError) as e:
        return f"Expert reference: unavailable ({e})."
    return (f"Expert reference (privileged pure pursuit on the centerline, commands at 20 Hz, from the start "
            f"pose): {lap['average_speed']:.2f} m/s, lap {lap['lap_time']:.2f} s, deviation MAE "
            f"{lap['deviation_mae']:.3f} m.")


def report_markdown(campaign: Campaign, rows: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                    skipped: Sequence[Mapping[str, str]], pending: int, plots: Mapping[str, list[str]],
                    env: Mapping[str, Any] | None = None, wall_s: float | None = None) -> str:
    mode = (f"realtime, target real-time factor {campaign.rtf:g}" if campaign.mode == "realtime"
            else "lockstep (the simulator waits for each command: deterministic, as fast as the brain answers)")
    starts = campaign.starts
    start_text = ("the circuit's start pose" if not starts.get("random") else
                  f"{starts['random']} seeded random points along the lap (seed {starts['seed']}, direction "
                  f"{starts['direction']}), the same for every method")
    lines = [f"# Benchmark campaign `{campaign.name}`", ""]
    if campaign.description:
        lines += [campaign.description, ""]
    lines += [f"- Machine: {machine_text(env)}",
              f"- Simulator: embedded f1_sim, mode {mode}",
              f"- Laps per run: {campaign.laps}; repetitions: {campaign.repetitions}; starts: {start_text}",
              f"- Inference threads: {campaign.threads}; lap timeout: "
              + (f"{campaign.lap_timeout:g} sim s" if campaign.lap_timeout else "circuit length / 2 m/s (sim s)")
              + f"; run timeout: {campaign.run_timeout or 'auto'} wall s",
              f"- Runs finished: {len(runs)}" + (f", not yet run: {pending}" if pending else "")
              + (f"; wall time of the last invocation {wall_s:.0f} s" if wall_s else "")
              + (f"; the runs' own wall times add up to {sum(float(r.get('wall_s') or 0) for r in runs):.0f} s"
                 if runs else ""),
              f"- Generated {_dt.datetime.now().isoformat(timespec='seconds')} from `{campaign.source}`", ""]
    if skipped:
        lines += ["## Skipped on this machine", "", "| Method | Reason |", "| --- | --- |"]
        lines += [f"| {s['label']} | {s['reason']} |" for s in skipped]
        lines.append("")
    by_circuit: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_circuit.setdefault(r["circuit"], []).append(r)
    for circuit, rs in by_circuit.items():
        lines += [f"## {circuit}", "", table_markdown(rs), expert_text(circuit), ""]
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
    lines += ["## Targets (measured vs target; reported, not asserted)", "",
              "| Circuit | Method | Target | Measured | Goal | Status |", "| --- | --- | --- | --- | --- | --- |"]
    for t in targets(rows, campaign):
        for it in t["items"]:
            lines.append(f"| {t['circuit']} | {t['method']} | {it['what']} | {it['measured']} | {it['target']} | "
                         f"{_mark(it['ok'])} |")
    lines += ["", "Brain frequency target: camera-bound (the brain answers every camera frame) for every "
              "method but keras, whose 1/iteration time must reach >= 10x the published original PilotNet's "
              "5.6 it/s. Real-time factor target applies to realtime campaigns at target 1.0 "
              f"(>= {TARGET_RTF} x target).", ""]
    return "\n".join(lines)


RUNS_CSV_RUN = ("run_id", "circuit", "method", "brain", "backend", "model", "reverse", "start_index", "start_s",
                "repetition", "outcome", "wall_s")
RUNS_CSV_LAP = ("lap", "completed", "dnf_reason", "lap_time", "distance", "percentage", "average_speed",
                "deviation_mae", "deviation_max", "deviation_bm_1000pow", "deviation_bm_mean", "wall_contacts",
                "wall_contact_time", "brain_frequency_wall",
                "brain_frequency_sim", "brain_frequency_bm", "inference_time_mean", "inference_time_p50",
                "inference_time_p99", "real_time_factor", "camera_fps_sim", "brain_iterations", "skipped_frames",
                "bad_frames", "bad_outputs", "suddenness", "dnf_detail")


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return v


def runs_csv(runs: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RUNS_CSV_RUN + RUNS_CSV_LAP)
    for r in runs:
        for lap in r["laps"]:
            w.writerow([_cell(r.get(k)) for k in RUNS_CSV_RUN] + [_cell(lap.get(k)) for k in RUNS_CSV_LAP])
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
        cells = [r[k] for k in head[:8]] + [";".join(r["dnf"])]
        for k in AGG_METRICS:
            cells += [_cell(r[k]["mean"]), _cell(r[k]["spread"]), r[k]["n"]]
        cells += [_cell(r["size_mb"]), _cell(r["offline_mse"])]
        w.writerow(cells)
    return buf.getvalue()


def _clean(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


# ---------------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def read_track(folder: str) -> dict[str, np.ndarray] | None:
    """x, y (m) and lap of a run's track.csv (None when there is none)."""
    path = os.path.join(folder, "track.csv")
    if not os.path.exists(path):
        return None
    try:
        a = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError:
        return None
    if a.size == 0:
        return {"x": np.zeros(0), "y": np.zeros(0), "lap": np.zeros(0)}
    return {"lap": a[:, 0], "x": a[:, 2], "y": a[:, 3]}


#: Widest campaign plot (inches at the reports' 110 dpi): readable at page width.
MAX_PLOT_WIDTH = 11.0


def method_colors(methods: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One distinct colour per method, the same in every plot of a report: tab10 up to 10 methods,
    else hues evenly spaced around the circle, neighbours alternating bright and dark."""
    import colorsys

    import matplotlib

    if len(methods) <= 10:
        return {m: tuple(matplotlib.colormaps["tab10"](k)[:3]) for k, m in enumerate(methods)}
    n = len(methods)
    return {m: colorsys.hsv_to_rgb(k / n, 0.9 if k % 2 == 0 else 1.0, 0.95 if k % 2 == 0 else 0.55)
            for k, m in enumerate(methods)}


def _legend_outside(ax, title: str | None = None) -> None:
    """The legend right of the axes (over the plot it hides data and labels)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title=title,
                  ncol=1 if len(labels) <= 24 else 2, frameon=False)


def plot_trajectories(circuit_arg: str, runs: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG: the road and every method's driven path (first repetition of each start) overlaid."""
    return _png(trajectories_figure(circuit_arg, runs))


def trajectories_figure(circuit_arg: str, runs: Sequence[Mapping[str, Any]]):
    plt = _plt()
    c = load_circuit(circuit_arg)
    fig, ax = plt.subplots(figsize=(9, 7))
    s = np.linspace(0.0, c.length, max(200, int(c.length / 0.5)), endpoint=False)
    p, h = c.point_at(s), c.heading_at(s)
    n = np.stack([-np.sin(h), np.cos(h)], axis=1)
    for side in (1.0, -1.0):
        e = p + side * c.road_width / 2.0 * n
        ax.plot(np.r_[e[:, 0], e[:1, 0]], np.r_[e[:, 1], e[:1, 1]], color="0.6", lw=0.7)
    ax.plot(np.r_[p[:, 0], p[:1, 0]], np.r_[p[:, 1], p[:1, 1]], color="red", lw=0.6, ls="--", label="centerline")
    palette = method_colors(list(dict.fromkeys(r["method"] for r in runs)))
    for r in runs:
        if r["repetition"] != 1:
            continue
        tr = read_track(r["folder"])
        if tr is None or not len(tr["x"]):
            continue
        color = palette[r["method"]]
        first = r["start_index"] == min(x["start_index"] for x in runs if x["method"] == r["method"])
        ax.plot(tr["x"], tr["y"], lw=1.0, color=color, alpha=0.85, label=r["method"] if first else None)
        ax.plot(tr["x"][0], tr["y"][0], "o", ms=5, color=color, mec="black")
        if not all(lap.get("completed") for lap in r["laps"]):
            ax.plot(tr["x"][-1], tr["y"][-1], "x", ms=9, mew=2, color=color)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(f"{c.name}: trajectories (o start, x DNF)")
    _legend_outside(ax)
    return fig


def plot_bars(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG: mean inference time (ms) and brain frequency (it/s wall) per method, one bar per circuit."""
    return _png(bars_figure(rows))


def bars_figure(rows: Sequence[Mapping[str, Any]]):
    """Horizontal bars, methods down the side (their names never overlap), two panels side by side."""
    plt = _plt()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    circuits = list(dict.fromkeys(r["circuit"] for r in rows))
    height = min(12.0, 1.5 + 0.12 * len(methods) * max(1, len(circuits)) + 0.1 * len(methods))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(MAX_PLOT_WIDTH - 1, max(3.5, height)), sharey=True)
    width = 0.8 / max(1, len(circuits))
    x = np.arange(len(methods))
    for j, circuit in enumerate(circuits):
        by = {r["method"]: r for r in rows if r["circuit"] == circuit}
        inf = [1e3 * (by[m]["inference_time_mean"]["mean"] or np.nan) if m in by else np.nan for m in methods]
        inf_e = [1e3 * (by[m]["inference_time_mean"]["spread"] or 0.0) if m in by else 0.0 for m in methods]
        fr = [(by[m]["brain_frequency_wall"]["mean"] or np.nan) if m in by else np.nan for m in methods]
        fr_e = [(by[m]["brain_frequency_wall"]["spread"] or 0.0) if m in by else 0.0 for m in methods]
        a1.barh(x + j * width, inf, width, xerr=inf_e, label=circuit)
        a2.barh(x + j * width, fr, width, xerr=fr_e, label=circuit)
    a1.set_xlabel("mean inference time (ms)")
    a2.set_xlabel("brain frequency (it/s wall)")
    a1.set_yticks(x + width * (len(circuits) - 1) / 2)
    a1.set_yticklabels(methods, fontsize=8)
    a1.invert_yaxis()
    a2.legend(fontsize=8, loc="lower right")
    for a in (a1, a2):
        a.grid(axis="x", alpha=0.3)
    fig.tight_layout(w_pad=3.0)
    return fig


def plot_scatter(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG: position deviation MAE (m) vs mean inference time (ms), one point per circuit x method."""
    return _png(scatter_figure(rows))


def scatter_figure(rows: Sequence[Mapping[str, Any]]):
    """Colour = method, marker = circuit, both named in the legend beside the plot (labels written at
    the points overlap where methods cluster)."""
    plt = _plt()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = "osD^v<>"
    circuits = list(dict.fromkeys(r["circuit"] for r in rows))
    palette = method_colors(list(dict.fromkeys(r["method"] for r in rows)))
    for j, circuit in enumerate(circuits):
        for r in rows:
            if r["circuit"] != circuit or r["deviation_mae"]["mean"] is None or r["inference_time_mean"]["mean"] is None:
                continue
            ax.scatter([1e3 * r["inference_time_mean"]["mean"]], [r["deviation_mae"]["mean"]], s=36,
                       marker=markers[j % len(markers)], color=palette[r["method"]], edgecolors="black", linewidths=0.4)
    ax.axhline(TARGET_MAE_M, color="red", lw=0.8, ls="--")
    handles = [Line2D([], [], ls="", marker="o", color=c, mec="black", mew=0.4, label=m) for m, c in palette.items()]
    handles += [Line2D([], [], ls="", marker=markers[j % len(markers)], color="0.5", label=c)
                for j, c in enumerate(circuits)]
    handles.append(Line2D([], [], color="red", lw=0.8, ls="--", label=f"target MAE {TARGET_MAE_M} m"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
              ncol=1 if len(handles) <= 26 else 2)
    ax.set_xlabel("mean inference time (ms)")
    ax.set_ylabel("position deviation MAE (m)")
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------- the report
def write_report(campaign_dir: str, campaign: Campaign, specs: Sequence[RunSpec], skipped: Sequence[Mapping[str, str]],
                 offline_root: str | None = None, plots: bool = True, wall_s: float | None = None
                 ) -> dict[str, Any]:
    """Aggregate the finished runs into report.md, summary.{csv,json}, runs.csv and the plots (all
    written atomically). Returns the summary document."""
    runs = collect_runs(campaign_dir, specs)
    rows = summarize(runs, offline_index(offline_root) if offline_root else None)
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
           "summary": rows, "targets": targets(rows, campaign),
           "runs": [{k: v for k, v in r.items() if k not in ("environment",)} for r in runs]}
    atomic_write_text(os.path.join(campaign_dir, "summary.json"), json.dumps(_clean(doc), indent=1) + "\n")
    atomic_write_text(os.path.join(campaign_dir, "summary.csv"), summary_csv(rows))
    atomic_write_text(os.path.join(campaign_dir, "runs.csv"), runs_csv(runs))
    atomic_write_text(os.path.join(campaign_dir, "report.md"),
                      report_markdown(campaign, rows, runs, skipped, pending, figs, env, wall_s))
    return doc
