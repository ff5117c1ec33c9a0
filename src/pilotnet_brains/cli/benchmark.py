"""scripts/benchmark: run an online benchmark campaign (every method x every circuit, headless) and
write the combined report to results/benchmarks/<campaign>/.

Each run is the package's own launch/circuit.launch started by ``roslaunch -p PORT`` (the roslaunch
Python API's command line) in a child process on a free port, so it gets its own private ROS master
(no parameter such as /use_sim_time outlives it) and its own process tree: a crash ends only that
run, a hang is ended at the run's wall timeout (DNF "hung": SIGINT, then SIGKILL of every process of
the run) and the campaign goes on. The child dies with the campaign (PR_SET_PDEATHSIG), so a killed
campaign leaves no run behind; run again to resume: finished runs are skipped.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import signal
import sys
import time
from typing import Any

from pilotnet_brains import campaign as cp
from pilotnet_brains import results_root
from pilotnet_brains.campaign.launcher import STOP_GRACE, PortPool, Runner
from pilotnet_brains.helptext import HelpFormatter


def _describe(res: dict[str, Any]) -> str:
    spec: cp.RunSpec = res["spec"]
    head = f"{spec.run_id}: "
    if res["outcome"] != "done":
        return head + f"DNF {res['outcome']} after {res['wall_s']:.0f} s wall" + \
            (f" on {res['node']}" if res.get("node") else "") + f" ({res['detail'][:200]})"
    laps = (res.get("laps") or {}).get("laps") or []
    bits = []
    for lap in laps:
        state = "completed" if lap.get("completed") else f"DNF {lap.get('dnf_reason')} ({lap.get('percentage', 0):.0f} %)"
        mae = lap.get("deviation_mae")
        bits.append(f"lap {lap.get('lap')} {state} in {lap.get('lap_time', 0):.1f} s sim"
                    + (f", MAE {mae:.3f} m" if isinstance(mae, float) else ""))
    node = f" on {res['node']}" if res.get("node") else ""
    return head + ("; ".join(bits) or "no lap") + f" [{res['wall_s']:.0f} s wall{node}]"


def _join_ray(address: str, campaign: cp.Campaign, entries: list[cp.Entry]):
    """ray connected to ``address`` with every node able to run the campaign, else None (the reason
    printed: what is wrong and what to do)."""
    from pilotnet_brains.campaign import ray_runner

    try:
        ray = ray_runner.connect(address)
    except ray_runner.RayError as e:
        print(f"benchmark: {e}", file=sys.stderr)
        return None
    try:
        problems = ray_runner.check_nodes(ray, entries, campaign)
    except ray_runner.RayError as e:
        print(f"benchmark: {e}", file=sys.stderr)
        ray_runner.disconnect(ray)
        return None
    bad = {node: missing for node, missing in problems.items() if missing}
    print(f"ray: {len(problems)} node(s) can take runs of {campaign.cpus_per_run:g} CPUs"
          + (f"; {len(bad)} lack what the campaign needs:" if bad else ": all have what the campaign needs"))
    if bad:
        for node, missing in sorted(bad.items()):
            print(f"  node {node} lacks:", file=sys.stderr)
            for m in missing:
                print(f"    - {m}", file=sys.stderr)
        print("benchmark: set those nodes up (make setup, scripts/optimize for the artifacts, or copy them with "
              "the same sha256), or stop them, then run again", file=sys.stderr)
        ray_runner.disconnect(ray)
        return None
    return ray


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark",
        description="Run an online benchmark campaign: every method of the campaign file on every circuit, "
                    "each run an isolated circuit.launch (own ROS master on a free port, own processes), "
                    "then write results/benchmarks/<campaign>/report.md, summary.{csv,json}, runs.csv and "
                    "plots. Run it again to resume: finished runs are skipped. Campaign file format: see "
                    "config/benchmarks/default.yaml and pilotnet_brains/campaign/__init__.py.",
        formatter_class=HelpFormatter,
        epilog="examples:\n  scripts/benchmark default --jobs 2\n  scripts/benchmark default --ray auto\n"
               "  scripts/benchmark tiny --list\n"
               "  scripts/benchmark my_campaign.yaml --report-only")
    p.add_argument("campaign", help="campaign name (config/benchmarks/<name>.yaml) or path to a .yaml file")
    p.add_argument("--jobs", "-j", type=int, default=1,
                   help="runs at once, one master each (default 1; runs in parallel share the CPU, which "
                        "lowers realtime RTF and brain frequency: keep 1 for timing figures)")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run every run as a task on a Ray cluster instead of --jobs processes here: 'auto' (the "
                        "cluster this machine belongs to), 'ray://HOST:10001' (Ray Client), 'HOST:PORT' (the "
                        "head), or 'local' (a throw-away cluster on this machine). Each task asks for the "
                        "campaign's cpus_per_run CPUs (default 2) and runs with its own ROS master on its node; "
                        "its run folder comes back here. Every node needs the package set up (make setup; "
                        "`ray start` from a shell with tools/env.sh sourced): the nodes are checked first")
    p.add_argument("--out", default=None, help="parent of the campaign folder (default <package>/results/benchmarks)")
    p.add_argument("--offline", default=None,
                   help="evaluate_offline results root to join size/MSE from (default <out>/../offline)")
    p.add_argument("--list", action="store_true", help="print the run matrix and skipped methods, run nothing")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from the finished runs")
    p.add_argument("--fresh", action="store_true", help="forget finished runs (delete the campaign's runs/) first")
    p.add_argument("--retry", action="append", default=[], choices=["hung", "failed"],
                   help="run again the runs that ended this way (repeatable)")
    p.add_argument("--max-runs", type=int, default=0, help="run at most this many pending runs, then report")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots of the report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        print("benchmark: --jobs must be >= 1", file=sys.stderr)
        return 2
    if args.ray is not None and args.jobs != 1:
        print("benchmark: --jobs N runs here, --ray on a cluster: give one of them", file=sys.stderr)
        return 2
    try:
        campaign = cp.load_campaign(args.campaign)
        entries, skipped = cp.resolve_entries(campaign)
        specs = cp.expand(campaign, entries)
    except cp.CampaignError as e:
        print(f"benchmark: {e}", file=sys.stderr)
        return 2
    root = os.path.realpath(cp.package_root())
    out = os.path.abspath(args.out or os.path.join(results_root(), "benchmarks"))
    offline_root = os.path.abspath(args.offline or os.path.join(os.path.dirname(out), "offline"))
    cdir = os.path.join(out, campaign.name)
    launch_file = os.path.join(root, "launch", "circuit.launch")

    if args.fresh and os.path.isdir(cp.runs_dir(cdir)):
        shutil.rmtree(cp.runs_dir(cdir))
    pending = [s for s in specs if not cp.is_finished(cdir, s, retry=args.retry)]
    print(f"campaign {campaign.name}: {len(entries)} method(s) x {len(campaign.circuits)} circuit(s) = "
          f"{len(specs)} run(s), {len(specs) - len(pending)} already finished, {len(pending)} to run; "
          f"mode {campaign.mode}" + (f" at rtf {campaign.rtf:g}" if campaign.mode == "realtime" else "")
          + f"; folder {cdir}")
    for s in skipped:
        print(f"  skipped {s['label']}: {s['reason']}")
    if args.list:
        for s in specs:
            state = "todo" if s in pending else "finished"
            print(f"  {state:8s} {s.run_id}  (run timeout {cp.run_timeout(campaign, s.circuit):.0f} s)")
        return 0
    os.makedirs(cdir, exist_ok=True)
    if args.max_runs > 0:
        pending = pending[:args.max_runs]

    ray = None
    if args.ray and pending and not args.report_only:
        ray = _join_ray(args.ray, campaign, entries)
        if ray is None:
            return 2
    t0, cpu0 = time.monotonic(), time.process_time()
    runner = Runner(cdir, launch_file, PortPool())
    results: list[dict[str, Any]] = []
    interrupted = False
    if pending and not args.report_only:
        from tqdm import tqdm

        def on_signal(signum, _frame):
            raise KeyboardInterrupt

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        bar = tqdm(total=len(pending), desc=f"benchmark {campaign.name}", unit="run", disable=args.no_progress,
                   file=sys.stderr, dynamic_ncols=True)

        def on_result(res: dict[str, Any]) -> None:
            results.append(res)
            bar.update(1)
            line = _describe(res)
            if args.no_progress:
                print(line, flush=True)
            else:
                bar.write(line, file=sys.stdout)

        def on_progress(text: str) -> None:
            bar.set_postfix_str(text[:160], refresh=True)

        pool = cf.ThreadPoolExecutor(max_workers=1 if ray else args.jobs)
        try:
            if ray is not None:
                from pilotnet_brains.campaign import ray_runner

                timeouts = {s.run_id: cp.run_timeout(campaign, s.circuit) for s in pending}
                ray_runner.run_all(ray, cdir, campaign, pending, timeouts, on_result, on_progress, STOP_GRACE)
            futures = [] if ray else [pool.submit(runner.run, s, cp.run_timeout(campaign, s.circuit))
                                      for s in pending]
            left = set(futures)
            while left:
                done, left = cf.wait(left, timeout=1.0)
                for f in done:
                    res = f.result()
                    if res["outcome"] is not None:
                        on_result(res)
                on_progress(runner.progress_text(campaign.laps))
        except KeyboardInterrupt:
            interrupted = True
            runner.stopping.set()
            print("\nbenchmark: interrupted; ending the runs in flight (they will run again on resume)",
                  file=sys.stderr)
        finally:
            pool.shutdown(wait=True)          # queued runs return at once once stopping is set
            bar.close()
            for sig, handler in old.items():
                signal.signal(sig, handler)
    if results:
        print(f"driver: {time.process_time() - cpu0:.1f} s CPU for {len(results)} run(s) "
              f"({(time.process_time() - cpu0) / len(results):.2f} s per run), "
              f"{time.monotonic() - t0:.0f} s wall" + (f", on Ray ({args.ray})" if ray else f", --jobs {args.jobs}"))
    if ray is not None:
        from pilotnet_brains.campaign import ray_runner

        ray_runner.disconnect(ray)
    doc = cp.write_report(cdir, campaign, specs, skipped, offline_root=offline_root, plots=not args.no_plots,
                          wall_s=time.monotonic() - t0 if results else None)
    outcomes = [r["outcome"] for r in doc["runs"]]
    print(f"report: {os.path.join(cdir, 'report.md')} ({len(doc['runs'])}/{len(specs)} runs finished: "
          f"{outcomes.count('done')} done, {outcomes.count('hung')} hung, {outcomes.count('failed')} failed; "
          f"{len(skipped)} method(s) skipped)")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
