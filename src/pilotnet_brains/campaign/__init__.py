"""Online benchmark campaigns without ROS: the campaign file, the run matrix, resume bookkeeping and
the combined report (tables, CSV/JSON, plots). ``scripts/benchmark`` (:mod:`pilotnet_brains.cli.benchmark`)
runs the matrix, one isolated ``circuit.launch`` per run, and calls :func:`write_report`.

Modules: :mod:`.spec` (the campaign file and its methods), :mod:`.matrix` (the runs), :mod:`.runner`
(resume bookkeeping), :mod:`.aggregate` (per circuit x method figures and targets), :mod:`.report`
(report.md, CSV/JSON), :mod:`.reference` (the expert's lap per circuit), :mod:`.plots`, :mod:`.ray_runner` (the runs as Ray
tasks on a cluster: ``scripts/benchmark --ray``; imports ray only when used).

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
    cpus_per_run: 2               # scripts/benchmark --ray: CPUs each run's Ray task asks of its node
    ray_runtime_env: {}           # --ray: the tasks' Ray runtime env (e.g. env_vars), passed as is

Layout of ``results/benchmarks/<name>/``: ``runs/<run-id>/`` (the metrics node's run folder plus
``campaign_run.json``, the campaign's record of the run's outcome), ``logs/<run-id>.log``, and the
report: ``report.md``, ``summary.csv``/``summary.json`` (per circuit x method), ``runs.csv`` (per
lap), ``trajectories_<circuit>.png``, ``inference_frequency.png``, ``deviation_vs_inference.png``, and
``expert_reference.json`` (the expert's lap per circuit, kept while the circuit's geometry is the same).
"""
from __future__ import annotations

from pilotnet_brains import package_root
from pilotnet_brains.campaign.aggregate import (
    AGG_METRICS,
    SIM_FIELDS,
    TABLE_HEADER,
    TABLE_METRICS,
    TARGET_FRAME_SHARE,
    TARGET_KERAS_IT_S,
    TARGET_MAE_M,
    TARGET_RTF,
    collect_runs,
    mean_spread,
    offline_index,
    summarize,
    targets,
)
from pilotnet_brains.campaign.matrix import (
    STARTUP_ALLOWANCE,
    RunSpec,
    Start,
    circuit_name,
    circuit_starts,
    entry_model,
    expand,
    run_timeout,
)
from pilotnet_brains.campaign.plots import (
    bars_figure,
    method_colors,
    plot_bars,
    plot_scatter,
    plot_trajectories,
    read_track,
    scatter_figure,
    trajectories_figure,
)
from pilotnet_brains.campaign.reference import REFERENCE_FILE, expert_references, reference_key
from pilotnet_brains.campaign.report import (
    completed_text,
    report_markdown,
    runs_csv,
    summary_csv,
    table_markdown,
    write_report,
)
from pilotnet_brains.campaign.runner import (
    OUTCOMES,
    RUN_RECORD,
    classify,
    is_finished,
    lap_progress,
    read_json,
    run_folder,
    runs_dir,
    write_run_record,
)
from pilotnet_brains.campaign.spec import (
    CAMPAIGNS_DIR,
    DIRECTIONS,
    EXPLICIT,
    MODES,
    Campaign,
    CampaignError,
    Entry,
    all_entries,
    campaign_path,
    entry_availability,
    load_campaign,
    parse_campaign,
    resolve_entries,
)

__all__ = [
    "package_root",
    "AGG_METRICS", "SIM_FIELDS", "TABLE_HEADER", "TABLE_METRICS", "TARGET_FRAME_SHARE", "TARGET_KERAS_IT_S",
    "TARGET_MAE_M", "TARGET_RTF", "collect_runs", "mean_spread", "offline_index", "summarize", "targets",
    "STARTUP_ALLOWANCE", "RunSpec", "Start", "circuit_name", "circuit_starts", "entry_model", "expand", "run_timeout",
    "bars_figure", "method_colors", "plot_bars", "plot_scatter", "plot_trajectories", "read_track", "scatter_figure",
    "trajectories_figure",
    "REFERENCE_FILE", "expert_references", "reference_key",
    "completed_text", "report_markdown", "runs_csv", "summary_csv", "table_markdown", "write_report",
    "OUTCOMES", "RUN_RECORD", "classify", "is_finished", "lap_progress", "read_json", "run_folder", "runs_dir",
    "write_run_record",
    "CAMPAIGNS_DIR", "DIRECTIONS", "EXPLICIT", "MODES", "Campaign", "CampaignError", "Entry", "all_entries",
    "campaign_path", "entry_availability", "load_campaign", "parse_campaign", "resolve_entries",
]
