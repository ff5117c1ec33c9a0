"""The campaign file: its format (see the package doc), validation, and which methods run here."""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from pilotnet_brains import package_root
from pilotnet_brains.circuits import CircuitError, load_circuit
from pilotnet_brains.params import MODES, MetricsParams
from pilotnet_brains.util import resolve_yaml

#: Where campaign files live; a bare name resolves to ``<name>.yaml`` there.
CAMPAIGNS_DIR = os.path.join(os.path.realpath(package_root()), "config", "benchmarks")
#: The explicit (classical) brain's entry name: needs no model.
EXPLICIT = "explicit"
DIRECTIONS = ("forward", "reverse", "both")

_KEYS = ("name", "description", "backends", "circuits", "laps", "repetitions", "mode", "rtf", "starts",
         "timeouts", "record", "record_camera_every", "threads", "seed", "launch_args", "targets",
         "cpus_per_run", "ray_runtime_env")
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
    brain_timeout: float = MetricsParams.brain_timeout  # wall s
    record: bool = False
    record_camera_every: int = 10
    threads: int = 1
    seed: int = 0
    launch_args: dict[str, str] = field(default_factory=dict)
    targets: bool = True                  # false: a smoke campaign, whose targets are not applicable
    cpus_per_run: float = 2.0             # --ray: the CPUs each run's task asks of its node
    ray_runtime_env: dict[str, Any] = field(default_factory=dict)   # --ray: Ray runtime env of the tasks
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
    runtime_env = data.get("ray_runtime_env") or {}
    if not isinstance(runtime_env, dict):
        raise CampaignError(f"{source}: ray_runtime_env must be a mapping (a Ray runtime env such as "
                            f"{{env_vars: {{...}}, working_dir: ...}}), got {runtime_env!r}")
    with_targets = data.get("targets", True)
    if not isinstance(with_targets, bool):
        raise CampaignError(f"{source}: targets must be true or false, got {with_targets!r}")

    return Campaign(
        name=name, circuits=list(circuits), backends=backends, description=str(data.get("description") or ""),
        laps=_num(data, "laps", source, int, 1, 1), repetitions=_num(data, "repetitions", source, int, 1, 1),
        mode=mode, rtf=_num(data, "rtf", source, float, 0.0, 1.0, strict=True), starts=starts,
        lap_timeout=_num(timeouts, "lap", source + ": timeouts", float, 0.0, 0.0),
        run_timeout=run_timeout,
        brain_timeout=_num(timeouts, "brain", source + ": timeouts", float, 0.0, MetricsParams.brain_timeout,
                           strict=True),
        record=record, record_camera_every=_num(data, "record_camera_every", source, int, 0, 10),
        threads=_num(data, "threads", source, int, 1, 1), seed=_num(data, "seed", source, int, 0, 0),
        launch_args={str(k): arg_str(v) for k, v in launch_args.items()}, targets=with_targets,
        cpus_per_run=_num(data, "cpus_per_run", source, float, 0.0, 2.0, strict=True),
        ray_runtime_env=dict(runtime_env), source=source)


def arg_str(v: Any) -> str:
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

