"""Run folders: laps.json, laps.csv, table.md, trajectory.png, profile.png (all written atomically),
the run identity and the host environment.

Layout of ``results/<run-id>/``:

- ``laps.json`` — ``{"run_id", "status", "updated", "identity", "environment", "laps": [...],
  "in_progress": {...} | null}``; rewritten periodically while a lap runs, so a crash leaves the
  last state readable (``status`` says ``running``, ``done`` or ``interrupted``; ``refused``, with
  ``refusal`` = {by, message}, for a run that was refused before it started);
- ``laps.csv`` — one row per lap (:data:`CSV_COLUMNS`), identity columns included;
- ``table.md`` — the Markdown table researchers know (:data:`TABLE_HEADER`) plus notes on units;
- ``trajectory.png`` — the driven path over the circuit, coloured by |deviation|;
- ``profile.png`` — speed and signed deviation along the lap (m of progress);
- ``track.csv`` — the odometry samples of every lap (t, x, y, s, lateral, progress, lap);
- ``run.bag`` — with ``record:=true`` (written by the recorder node, not here).
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import re
import tempfile
from typing import Mapping, Sequence

import numpy as np

from pilotnet_brains import hostinfo
from pilotnet_brains.reporting import csv_cell, md_table, png_bytes, pyplot, to_json
from pilotnet_brains.util import atomic_write_bytes, atomic_write_text, sha256_path

#: Column titles of the tables' metrics (run tables and campaign reports), with their units. The brain
#: frequency is per wall-clock second (what the brain achieves on this machine; 1/iteration time is
#: the campaigns' separate brain_frequency_bm).
METRIC_TITLES: Mapping[str, str] = {
    "average_speed": "Average speed (m/s)", "deviation_mae": "Position deviation MAE (m)",
    "brain_frequency_wall": "Brain frequency (it/s wall)", "inference_time_mean": "Mean inference time (s)",
    "real_time_factor": "Real time factor", "lap_time": "Lap time (s)"}
#: The Markdown table's columns: the published PilotNet-optimization tables' five, plus two.
TABLE_HEADER: Sequence[str] = ("Method", *METRIC_TITLES.values(), "Completed")

#: Columns of laps.csv: identity first, then the lap's metrics (keys of metrics.lap_metrics).
CSV_IDENTITY: Sequence[str] = ("run_id", "circuit", "brain", "backend", "model", "model_sha256", "sim", "mode")
CSV_METRICS: Sequence[str] = (
    "lap", "completed", "dnf_reason", "lap_time", "distance", "percentage", "path_length", "average_speed",
    "max_speed", "deviation_mae", "deviation_max", "deviation_rmse", "deviation_bm_1000pow",
    "deviation_bm_mean", "wall_contacts", "wall_contact_time", "brain_iterations", "brain_frequency_wall", "brain_frequency_sim", "brain_frequency_bm",
    "inference_time_mean", "inference_time_p50", "inference_time_p99", "inference_time_max",
    "preprocess_time_mean", "iteration_time_mean", "real_time_factor", "rtf_source", "camera_frames",
    "camera_fps_sim", "commands", "suddenness", "skipped_frames", "bad_frames", "bad_outputs", "cpu_wait_brain",
    "cpu_wait_sim", "t_start", "t_end", "dnf_detail")
CSV_COLUMNS: Sequence[str] = tuple(CSV_IDENTITY) + tuple(CSV_METRICS)


# ---------------------------------------------------------------------------------- identity
def make_run_id(circuit: str, method: str, now: _dt.datetime | None = None) -> str:
    """Default run folder name: ``YYYYmmdd-HHMMSS_<circuit>_<method>`` (filesystem-safe)."""
    now = now or _dt.datetime.now()
    raw = f"{now:%Y%m%d-%H%M%S}_{circuit}_{method}"
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", raw)


#: A run id is one plain folder name (what :func:`make_run_id` makes): letters, digits, ``. _ + -``,
#: not starting with a dot (so never ``.``, ``..`` or a hidden folder).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,199}")


class RunFolderError(ValueError):
    """A run folder that cannot be this run's: a run id that is not one plain name, a results_dir
    that cannot be written, or a folder another run owns. The message says what to do."""


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is one plain folder name, else :class:`RunFolderError`."""
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise RunFolderError(f"run_id {run_id!r} is not one plain folder name: use only letters, digits "
                             f"and . _ + - (no '/', not starting with '.'), e.g. run_id:=my_run_1")
    return run_id


def _owner(folder: str) -> str:
    """Who owns an existing run folder, from its laps.json: 'a done run started ... on host'."""
    try:
        with open(os.path.join(folder, "laps.json")) as f:
            doc = json.load(f)
        ident = doc.get("identity") or {}
        return (f"a {doc.get('status', '?')} run started {ident.get('started', '?')} on "
                f"{ident.get('host', '?')} ({ident.get('brain') or '?'}/{ident.get('backend') or '-'})")
    except (OSError, ValueError, AttributeError):
        return "another run (no readable laps.json yet: it may be starting now)"


def check_run_folder(results_dir: str, run_id: str) -> None:
    """What :func:`claim_run_folder` would refuse, without creating anything: a run id that is not
    one plain name, a ``results_dir`` that is not a writable folder (or cannot be made one), a taken
    folder (``run_id`` empty: a generated, free one will be used)."""
    if run_id:
        check_run_id(run_id)
    try:
        os.makedirs(results_dir, exist_ok=True)       # the parent only: the run folder is the run's
        os.rmdir(tempfile.mkdtemp(dir=results_dir, prefix=".check_"))
    except OSError as e:
        raise RunFolderError(f"results_dir {results_dir} cannot be used ({e.strerror}: {e.filename}); pass "
                             f"results_dir:=<a folder you can write>") from None
    folder = os.path.join(results_dir, run_id)
    if run_id and os.path.lexists(folder):
        raise RunFolderError(f"run folder {folder} already exists: it belongs to {_owner(folder)}; "
                             f"choose another run_id:= (or delete that folder to measure the run again)")


def claim_run_folder(results_dir: str, run_id: str, unique: bool = False) -> str:
    """Create ``results_dir/run_id`` exclusively and return its path: a run owns its folder.

    Raises :class:`RunFolderError` for a run id that is not one plain name, a ``results_dir`` that
    cannot be created or written, or a folder that exists (naming the run that owns it). With
    ``unique`` (a generated id), a taken name gets a ``-2``, ``-3``... suffix instead."""
    check_run_id(run_id)
    try:
        os.makedirs(results_dir, exist_ok=True)
    except OSError as e:
        raise RunFolderError(f"results_dir {results_dir} cannot be created ({e.strerror}); pass "
                             f"results_dir:=<a folder you can write>") from None
    for n in range(1, 1000):
        name = run_id if n == 1 else f"{run_id}-{n}"
        folder = os.path.join(results_dir, name)
        try:
            os.mkdir(folder)
            return folder
        except FileExistsError:
            if not unique:
                raise RunFolderError(f"run folder {folder} already exists: it belongs to {_owner(folder)}; "
                                     f"choose another run_id:= (or delete that folder to measure "
                                     f"the run again)") from None
        except OSError as e:
            raise RunFolderError(f"results_dir {results_dir} is not writable ({e.strerror}); pass "
                                 f"results_dir:=<a folder you can write>") from None
    raise RunFolderError(f"results_dir {results_dir}: {run_id}-2 ... -999 are all taken; choose run_id:=")


def method_label(brain: str, backend: str) -> str:
    """How a run is named in tables: the backend for model brains, the brain otherwise."""
    if brain in ("", "pilotnet") and backend:
        return backend
    return brain or backend or "unknown"


def model_identity(model: str) -> dict[str, object]:
    """{model, model_sha256, model_bytes} of a model file or folder; sha empty when it is no path."""
    if model and os.path.exists(model):
        from pilotnet_brains.util import path_size

        return {"model": os.path.abspath(model), "model_sha256": sha256_path(model),
                "model_bytes": path_size(model)}
    return {"model": model, "model_sha256": "", "model_bytes": 0}


# ---------------------------------------------------------------------------------- formatting
def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "-"
        return f"{x:.{digits}f}"
    return str(x)


def completed_label(lap: Mapping[str, object]) -> str:
    if lap.get("completed"):
        return "yes"
    reason = lap.get("dnf_reason") or ("in progress" if lap.get("in_progress") else "?")
    return f"DNF {reason} ({_fmt(lap.get('percentage'), 1)} %)"


def table_rows(laps: Sequence[Mapping[str, object]], method: str) -> list[list[str]]:
    rows = []
    for lap in laps:
        name = method if len(laps) == 1 else f"{method} (lap {lap.get('lap')})"
        inf = lap.get("inference_time_mean")
        rows.append([
            name, _fmt(lap.get("average_speed")), _fmt(lap.get("deviation_mae")),
            _fmt(lap.get("brain_frequency_wall")), _fmt(inf, 5) if isinstance(inf, float) and inf < 0.01 else _fmt(inf, 4),
            _fmt(lap.get("real_time_factor")), _fmt(lap.get("lap_time"), 2), completed_label(lap)])
    return rows


def markdown_table(laps: Sequence[Mapping[str, object]], method: str, title: str = "") -> str:
    """The run's table in Markdown, with the units and the BM-style deviation as notes."""
    lines = [f"### {title}", ""] if title else []
    lines += md_table(TABLE_HEADER, table_rows(laps, method)) + [""]
    bm = ", ".join(_fmt(lap.get("deviation_bm_1000pow")) for lap in laps)
    contacts = ", ".join(str(lap.get("wall_contacts", "-")) for lap in laps)
    lines.append("Average speed = path length / sim time; position deviation MAE = mean |distance to "
                 "the centerline|; brain frequency = brain iterations per wall-clock second; real time "
                 "factor = sim time / wall time over the lap; lap time in sim seconds. "
                 f"Behavior Metrics' position deviation (each red-line point's distance d to the driven path, "
                 f"mean of 1000^d, not metres): {bm}. Wall contacts: {contacts}.")
    wait = cpu_wait_text(laps)
    if wait:
        lines += ["", wait]
    return "\n".join(lines) + "\n"


def cpu_wait_text(laps: Sequence[Mapping[str, object]]) -> str:
    """The laps' CPU wait in words ('' when it was not measured), with a warning when the brain
    waited for a CPU more than :data:`pilotnet_brains.cpuwait.BUSY_WAIT_SHARE` of a lap."""
    from pilotnet_brains.cpuwait import BUSY_WAIT_SHARE

    def share(lap, who):
        v = lap.get(f"cpu_wait_{who}")
        return float(v) if isinstance(v, (int, float)) and math.isfinite(float(v)) else None

    measured = [lap for lap in laps if share(lap, "brain") is not None or share(lap, "sim") is not None]
    if not measured:
        return ""
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"   # noqa: E731
    text = "CPU wait (time runnable but not running, per wall second of the lap): " + "; ".join(
        (f"lap {lap.get('lap')}: " if len(laps) > 1 else "") + f"brain {pct(share(lap, 'brain'))}, "
        f"simulator {pct(share(lap, 'sim'))}" for lap in measured) + "."
    busy = [lap for lap in measured if (share(lap, "brain") or 0.0) > BUSY_WAIT_SHARE]
    if busy:
        text += (f" **The machine was busy** (the brain waited over {100 * BUSY_WAIT_SHARE:.0f} % in lap(s) "
                 f"{', '.join(str(lap.get('lap')) for lap in busy)}): wall-clock figures (brain frequency, real "
                 f"time factor) and, in realtime mode, the driving itself may measure the machine as much as the "
                 f"brain.")
    return text


def laps_csv(laps: Sequence[Mapping[str, object]], identity: Mapping[str, object]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for lap in laps:
        row = [identity.get(k, "") for k in CSV_IDENTITY] + [lap.get(k, "") for k in CSV_METRICS]
        w.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


def track_csv(tracks: Sequence[Mapping[str, np.ndarray]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ("t", "x", "y", "s", "lateral", "progress")
    w.writerow(("lap",) + cols)
    for k, tr in enumerate(tracks, start=1):
        for i in range(len(tr["t"])):
            w.writerow([k] + [f"{float(tr[c][i]):.6f}" for c in cols])
    return buf.getvalue()


# ---------------------------------------------------------------------------------- plots
def deviation_scale(tracks: Sequence[Mapping[str, np.ndarray]], floor: float = 0.05) -> float:
    """Top of trajectory.png's colour scale (m): the run's largest |deviation|, so the colours spread
    over what this run did (a good lap's 0-0.2 m is not one dark colour on a 0-4 m scale)."""
    peaks = [float(np.max(np.abs(tr["lateral"]))) for tr in tracks if len(tr["lateral"])]
    return max(peaks + [floor])


def plot_trajectory(circuit, tracks: Sequence[Mapping[str, np.ndarray]], laps: Sequence[Mapping[str, object]],
                    title: str = "") -> bytes:
    """PNG bytes: the road (edges), the red centerline and the driven path coloured by |lateral| (m)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 7))
    s = np.linspace(0.0, circuit.length, max(200, int(circuit.length / 0.5)), endpoint=False)
    p = circuit.point_at(s)
    h = circuit.heading_at(s)
    n = np.stack([-np.sin(h), np.cos(h)], axis=1)
    half = circuit.road_width / 2.0
    for side in (1.0, -1.0):
        e = p + side * half * n
        ax.plot(np.r_[e[:, 0], e[:1, 0]], np.r_[e[:, 1], e[:1, 1]], color="0.45", lw=0.8)
    # the centerline above the path, so a lap that follows it closely does not hide it
    ax.plot(np.r_[p[:, 0], p[:1, 0]], np.r_[p[:, 1], p[:1, 1]], color="red", lw=0.6, ls="--", zorder=3,
            label="centerline")
    sc = None
    vmax = deviation_scale(tracks)
    for tr, lap in zip(tracks, laps):
        if not len(tr["x"]):
            continue
        sc = ax.scatter(tr["x"], tr["y"], c=np.abs(tr["lateral"]), s=4, cmap="viridis", vmin=0.0, vmax=vmax,
                        zorder=2)
        if not lap.get("completed"):
            ax.plot(tr["x"][-1], tr["y"][-1], "kx", ms=10, mew=2,
                    label=f"lap {lap.get('lap')}: DNF {lap.get('dnf_reason') or 'in progress'}")
    x0, y0, _ = circuit.start_pose
    ax.plot(x0, y0, "o", color="black", mfc="white", label="start")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="|deviation| from the centerline (m)")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or circuit.name)
    return png_bytes(fig)


def plot_profile(tracks: Sequence[Mapping[str, np.ndarray]], laps: Sequence[Mapping[str, object]],
                 title: str = "") -> bytes:
    """PNG bytes: speed (m/s) and signed deviation (m) against progress along the lap (m)."""
    from pilotnet_brains.metrics import speed_profile

    plt = pyplot()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for tr, lap in zip(tracks, laps):
        if len(tr["t"]) < 2:
            continue
        xy = np.stack([tr["x"], tr["y"]], axis=1)
        ok = np.diff(tr["t"]) > 1e-9
        mid = 0.5 * (tr["progress"][1:] + tr["progress"][:-1])[ok]
        label = f"lap {lap.get('lap')}"
        a1.plot(mid, speed_profile(tr["t"], xy), lw=1, label=label)
        a2.plot(tr["progress"], tr["lateral"], lw=1, label=label)
    a1.set_ylabel("speed (m/s)")
    a2.set_ylabel("deviation (m, left +)")
    a2.axhline(0.0, color="red", lw=0.6)
    a2.set_xlabel("progress along the lap (m)")
    a1.legend(fontsize=8)
    a1.set_title(title)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    return png_bytes(fig)


# ---------------------------------------------------------------------------------- the writer
class RunWriter:
    """Writes one run folder. Every file is replaced atomically (old or new, never half)."""

    def __init__(self, folder: str, identity: Mapping[str, object], env: Mapping[str, object] | None = None):
        self.folder = os.path.abspath(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.identity = dict(identity)
        self.env = dict(env) if env is not None else hostinfo.describe(identity.get("threads"))  # type: ignore[arg-type]
        self.method = method_label(str(identity.get("brain", "")), str(identity.get("backend", "")))

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def write_json(self, laps: Sequence[Mapping[str, object]], in_progress: Mapping[str, object] | None,
                   status: str, extra: Mapping[str, object] | None = None) -> None:
        """laps.json; ``extra`` adds top-level keys (``refusal`` = {by, message} of a refused run)."""
        doc = {"run_id": self.identity.get("run_id", os.path.basename(self.folder)), "status": status,
               "updated": _dt.datetime.now().isoformat(timespec="seconds"), "identity": self.identity,
               "environment": self.env, "laps": list(laps), "in_progress": in_progress, **(extra or {})}
        atomic_write_text(self.path("laps.json"), to_json(doc))

    def write_tables(self, laps: Sequence[Mapping[str, object]]) -> str:
        atomic_write_text(self.path("laps.csv"), laps_csv(laps, self.identity))
        title = f"{self.identity.get('circuit', '')}: {self.method} ({self.identity.get('sim', '')}, " \
                f"{self.identity.get('mode', '')})"
        table = markdown_table(laps, self.method, title=title)
        atomic_write_text(self.path("table.md"), table)
        return table

    def write_plots(self, circuit, tracks: Sequence[Mapping[str, np.ndarray]],
                    laps: Sequence[Mapping[str, object]]) -> None:
        title = f"{circuit.name}: {self.method}"
        atomic_write_bytes(self.path("trajectory.png"), plot_trajectory(circuit, tracks, laps, title))
        atomic_write_bytes(self.path("profile.png"), plot_profile(tracks, laps, title))
        atomic_write_text(self.path("track.csv"), track_csv(tracks))

    def write_final(self, laps: Sequence[Mapping[str, object]], status: str, circuit=None,
                    tracks: Sequence[Mapping[str, np.ndarray]] | None = None, plots: bool = True) -> str:
        """laps.csv, table.md, with a circuit and tracks the plots, and last laps.json with its final
        status (so a reader that sees the status finds every other file). Returns the Markdown table."""
        table = self.write_tables(laps)
        try:
            if plots and circuit is not None and tracks is not None:
                self.write_plots(circuit, tracks, laps)
        finally:
            self.write_json(laps, None, status)
        return table


def read_laps(folder_or_file: str) -> dict[str, object]:
    """Load a run's laps.json (a run folder or the file itself)."""
    path = folder_or_file
    if os.path.isdir(path):
        path = os.path.join(path, "laps.json")
    with open(path) as f:
        return json.load(f)
