"""Recompute a run's lap metrics from its rosbag with the live node's own code (RunTracker).

The bag's messages are fed in recording order as the node receives them: odometry by its stamp,
brain stats by their frame stamp, commands at their bag time, camera_info by stamp. The run starts
as live at the first BrainStats' stamp (a brain without stats: its first command's bag time; a bag
of odometry only, as Behavior Metrics records: its first sample). Laps that the node ended on the
wall clock (brain_died, interrupted: :data:`~pilotnet_brains.metrics.WALL_REASONS`) cannot be seen
in sim time, so they end where the recorded LapResult says. A bag that ends inside a lap
(the run was stopped, and its last LapResult not recorded) ends it as DNF ``interrupted``, as the live
node did; its circuit then comes from the run identity the recorder wrote first. Without the node's
wall clock the real-time factor comes from the brain's own iteration periods (``rtf_source`` says which).
"""
from __future__ import annotations

import json
from dataclasses import fields

from pilotnet_brains import topics
from pilotnet_brains.circuits import load_circuit
from pilotnet_brains.metrics import WALL_REASONS, LapLimits, RunTracker
from pilotnet_brains.sim.kinematics import yaw_of


def read_recorded(bag) -> list[dict[str, object]]:
    """The LapResults the live node published (their JSON payloads, identity included)."""
    out = []
    for _, msg, _ in bag.read_messages(topics=[topics.LAP_RESULTS]):
        try:
            out.append(json.loads(msg.json))
        except ValueError:
            continue
    return out


def read_identity(bag) -> dict[str, object]:
    """The run identity the recorder wrote first into the bag ({} for a bag without it)."""
    for _, msg, _ in bag.read_messages(topics=[topics.RUN_IDENTITY]):
        try:
            return dict(json.loads(msg.data))
        except (ValueError, TypeError):
            break
    return {}


def replay_bag(path: str, circuit: str | None = None, limits: LapLimits | None = None,
               progress: bool = False) -> tuple[RunTracker, list[dict[str, object]], dict[str, object],
                                                list[dict[str, object]]]:
    """Replay a run bag. Returns (tracker, per-lap metrics, identity, recorded live laps).

    ``circuit`` (name or path) and ``limits`` default to what the live node recorded in its
    LapResults; a bag without LapResults needs ``circuit``.
    """
    import rosbag

    try:
        bag = rosbag.Bag(path)
    except (OSError, rosbag.ROSBagException) as e:
        raise ValueError(f"{path}: cannot open the bag ({e}); a bag still being recorded is named .bag.active "
                         f"and needs `rosbag reindex` first") from None
    with bag:
        recorded = read_recorded(bag)
        identity: dict[str, object] = dict(recorded[0].get("identity", {})) if recorded else read_identity(bag)
        name = circuit or identity.get("circuit_source") or identity.get("circuit")
        if not name:
            raise ValueError(f"{path}: the bag has no LapResult naming its circuit; pass --circuit NAME_OR_PATH")
        try:
            circ = load_circuit(str(name), reverse=bool(identity.get("reverse", False)))
        except (OSError, ValueError):
            if circuit or not identity.get("circuit"):
                raise
            circ = load_circuit(str(identity["circuit"]), reverse=bool(identity.get("reverse", False)))
        if limits is None:
            known = {f.name for f in fields(LapLimits)}
            limits = LapLimits(**{k: v for k, v in dict(identity.get("limits", {})).items() if k in known})
        tracker = RunTracker(circ, limits)
        wall_ends = sorted((float(r["t_end"]), str(r["dnf_reason"]), str(r.get("dnf_detail", "")))
                           for r in recorded if r.get("dnf_reason") in WALL_REASONS)
        wanted = [topics.ODOM, topics.BRAIN_STATS, topics.CMD_VEL, topics.CAMERA_INFO]
        # The run starts where the live node started it (its lap 1 record: t_start and the pose
        # there, which stands in for a start sample the bag lacks when the recorder connected
        # late); without a record, as live: the first BrainStats' stamp, else the first command,
        # else (a bag of odometry only, as Behavior Metrics records) the first odometry sample.
        odom_t = [m.header.stamp.to_sec() for _, m, _ in bag.read_messages(topics=[topics.ODOM])]
        if not odom_t:
            raise ValueError(f"{path}: no {topics.ODOM} messages: nothing to measure")
        inject = None
        lap1 = next((r for r in recorded if int(r.get("lap", 0)) == 1 and r.get("start_xy")), None)
        first = next(iter(bag.read_messages(topics=[topics.BRAIN_STATS])), None)
        first_cmd = next(iter(bag.read_messages(topics=[topics.CMD_VEL])), None)
        if lap1 is not None:
            t0 = float(lap1["t_start"])
            tracker.arm(t0)
            if not any(abs(x - t0) < 1e-9 for x in odom_t):
                inject = (t0, *lap1["start_xy"])
        elif first is not None:
            tracker.arm(first[1].header.stamp.to_sec())
        elif first_cmd is not None:
            tracker.arm(first_cmd[2].to_sec())
        else:
            tracker.arm(odom_t[0])
        it = bag.read_messages(topics=wanted)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=bag.get_message_count(topic_filters=wanted), unit="msg", desc="replay")
        for topic, msg, t in it:       # all of it: stats of a lap's last frames may come after its end
            if topic == topics.ODOM:
                stamp = msg.header.stamp.to_sec()
                if inject is not None and stamp > inject[0]:
                    tracker.add_odom(*inject)
                    inject = None
                while wall_ends and stamp > wall_ends[0][0]:
                    t_end, reason, detail = wall_ends.pop(0)
                    tracker.abort(reason, t=t_end, detail=detail)
                tracker.add_odom(stamp, msg.pose.pose.position.x, msg.pose.pose.position.y,
                                 yaw=yaw_of(msg.pose.pose.orientation))
            elif topic == topics.BRAIN_STATS:
                tracker.add_stats(msg.header.stamp.to_sec(), msg.inference_time, msg.preprocess_time,
                                  msg.iteration_time, msg.period, msg.skipped_frames, msg.bad_frames,
                                  msg.bad_outputs, msg.v, msg.w, backend=msg.backend)
            elif topic == topics.CMD_VEL:
                tracker.add_command(t.to_sec(), msg.linear.x, msg.angular.z)
            else:
                tracker.add_camera(msg.header.stamp.to_sec())
        for t_end, reason, detail in wall_ends:
            tracker.abort(reason, t=t_end, detail=detail)
        if tracker.current is not None and not tracker.done:
            # the bag ends inside a lap: the run was stopped before that lap ended, as the live node says
            tracker.abort("interrupted", detail="the bag ends before the lap did (the run was stopped)")
    laps = [tracker.lap_metrics(span) for span in tracker.laps]
    return tracker, laps, identity, recorded
