"""Lap metrics on hand-computed drives: straight at a known offset, circles, short laps, wrong way,
the wrap at s = length, and every DNF reason."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pilotnet_brains.circuits import Circuit
from pilotnet_brains.metrics import (
    LapLimits,
    RunTracker,
    bm_deviation,
    default_timeout,
    detect_laps,
    suddenness,
    unwrap_progress,
    wait_share,
    wrap_signed,
)

R = 30.0          # circle radius (m)
HZ = 20.0         # odometry rate


def circle() -> Circuit:
    """Counter-clockwise circle of radius R, road 6 m wide, start at (R, 0) heading +y."""
    pts = [[R * math.cos(a), R * math.sin(a)] for a in np.linspace(0, 2 * math.pi, 37)]
    return Circuit("circle", pts, road_width=6.0, line_width=0.3, start_pose=(R, 0.0, math.pi / 2))


def stadium(straight: float = 100.0, radius: float = 20.0) -> Circuit:
    """Straight along +x from (0,0) to (straight,0), semicircle, back along y = 2*radius."""
    pts = []
    for x in np.linspace(0, straight, 10, endpoint=False):
        pts.append([x, 0.0])
    for a in np.linspace(-math.pi / 2, math.pi / 2, 12, endpoint=False):
        pts.append([straight + radius * math.cos(a), radius + radius * math.sin(a)])
    for x in np.linspace(straight, 0, 10, endpoint=False):
        pts.append([x, 2 * radius])
    for a in np.linspace(math.pi / 2, 3 * math.pi / 2, 12, endpoint=False):
        pts.append([radius * math.cos(a), radius + radius * math.sin(a)])
    pts.append(pts[0])
    return Circuit("stadium", pts, road_width=6.0, line_width=0.3, start_pose=(10.0, 0.0, 0.0))


def arc_drive(radius: float, speed: float, duration: float, direction: float = 1.0, a0: float = 0.0):
    """Samples (t, xy) of a drive on a circle of ``radius`` at ``speed`` m/s, CCW if direction > 0."""
    t = np.arange(0.0, duration + 1e-9, 1.0 / HZ)
    a = a0 + direction * speed * t / radius
    return t, np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)


def long_limits(**kw) -> LapLimits:
    kw.setdefault("timeout", 1e6)
    return LapLimits(**kw)


def test_wrap_and_unwrap_across_the_end_of_the_lap():
    L = 100.0
    assert wrap_signed(99.0 - 1.0, L) == pytest.approx(-2.0)
    assert wrap_signed(1.0 - 99.0, L) == pytest.approx(2.0)
    p = unwrap_progress([99.0, 99.5, 0.2, 0.7, 50.0], L)
    np.testing.assert_allclose(p[:4], [0.0, 0.5, 1.2, 1.7])
    # backwards across the wrap is negative
    np.testing.assert_allclose(unwrap_progress([0.5, 0.1, 99.6, 99.0], L), [0.0, -0.4, -0.9, -1.5])
    # relative to a reference
    np.testing.assert_allclose(unwrap_progress([1.0, 2.0], L, s_ref=98.0), [3.0, 4.0])


def test_straight_drive_at_known_offset_gives_that_mae():
    c = stadium()
    t = np.arange(0.0, 12.0 + 1e-9, 1.0 / HZ)              # 60 m at 5 m/s along y = 1.5
    xy = np.stack([20.0 + 5.0 * t, np.full_like(t, 1.5)], axis=1)
    tracker, laps = detect_laps(c, t, xy, long_limits())
    assert len(laps) == 1 and not laps[0].finished
    m = tracker.lap_metrics(laps[0])
    assert m["in_progress"] and not m["completed"]
    assert m["deviation_mae"] == pytest.approx(1.5, abs=0.01)     # the offset, in metres
    assert m["deviation_max"] == pytest.approx(1.5, abs=0.01)
    assert m["deviation_bm_1000pow"] == pytest.approx(1000 ** 1.5, rel=0.05)
    assert m["average_speed"] == pytest.approx(5.0, rel=1e-6)
    assert m["lap_time"] == pytest.approx(12.0)
    assert m["path_length"] == pytest.approx(60.0, rel=1e-6)
    assert m["distance"] == pytest.approx(60.0, abs=0.05)        # along the centerline
    assert m["percentage"] == pytest.approx(100 * 60.0 / c.length, abs=0.05)


def test_circle_lap_completes_with_interpolated_lap_time():
    c = circle()
    v = 10.0
    # 0.5 m outside (right of the CCW driving direction => lateral -0.5)
    t, xy = arc_drive(R + 0.5, v, 25.0)
    tracker, laps = detect_laps(c, t, xy, long_limits())
    assert len(laps) == 1 and laps[0].completed and laps[0].dnf_reason == ""
    assert tracker.done
    m = tracker.lap_metrics(laps[0])
    expected_time = 2 * math.pi * (R + 0.5) / v     # one full turn at radius R + 0.5
    assert m["lap_time"] == pytest.approx(expected_time, abs=2e-3)
    assert m["average_speed"] == pytest.approx(v, rel=1e-3)
    assert m["deviation_mae"] == pytest.approx(0.5, abs=0.005)
    assert m["distance"] == pytest.approx(c.length)
    assert m["percentage"] == pytest.approx(100.0)
    assert m["deviation_bm_1000pow"] == pytest.approx(1000 ** 0.5, rel=0.02)
    track = tracker.lap_track(laps[0])
    assert np.all(np.diff(track["progress"]) > 0)


def test_two_laps_chain_at_the_crossing():
    c = circle()
    t, xy = arc_drive(R, 8.0, 60.0)
    tracker, laps = detect_laps(c, t, xy, long_limits(laps=2))
    assert [lap.completed for lap in laps] == [True, True]
    assert laps[1].t_start == laps[0].t_end
    lap_time = 2 * math.pi * R / 8.0
    assert laps[0].t_end == pytest.approx(lap_time, abs=2e-3)
    assert laps[1].t_end == pytest.approx(2 * lap_time, abs=2e-3)
    assert tracker.lap_metrics(laps[1])["deviation_mae"] < 0.01
    # the run is over: more samples change nothing
    assert tracker.add_odom(100.0, R, 0.0) == []


def test_lap_cut_short_reports_percentage_and_stuck():
    c = circle()
    v = 6.0
    quarter3 = 0.75 * 2 * math.pi * R / v
    t, xy = arc_drive(R, v, quarter3)
    t_stop = np.arange(t[-1] + 1 / HZ, t[-1] + 12.0, 1 / HZ)          # then stands still
    t_all = np.concatenate([t, t_stop])
    xy_all = np.concatenate([xy, np.repeat(xy[-1:], len(t_stop), axis=0)])
    tracker, laps = detect_laps(c, t_all, xy_all, long_limits())
    assert len(laps) == 1 and laps[0].dnf_reason == "stuck"
    # stuck once 10 s passed without moving 0.5 m
    assert laps[0].t_end == pytest.approx(quarter3 + 10.0, abs=0.1)
    m = tracker.lap_metrics(laps[0])
    assert not m["completed"]
    assert m["percentage"] == pytest.approx(75.0, abs=0.1)
    assert m["distance"] == pytest.approx(0.75 * c.length, abs=0.2)


def test_wrong_way_drive_never_laps_and_progress_is_negative():
    c = circle()
    t, xy = arc_drive(R, 8.0, 40.0, direction=-1.0)   # clockwise: against the driving direction
    tracker, laps = detect_laps(c, t, xy, LapLimits(timeout=30.0))
    assert len(laps) == 1 and laps[0].dnf_reason == "timeout"
    m = tracker.lap_metrics(laps[0])
    assert not m["completed"]
    assert m["distance"] == pytest.approx(-8.0 * 30.0, abs=0.5)      # a wrong-way lap's worth, negative
    assert m["percentage"] == 0.0
    assert tracker.odom.array("progress")[tracker._first + 1] < 0


def test_unwrap_in_the_tracker_when_the_start_is_just_before_s_equals_length():
    c = circle()
    # start 5 m (of arc) before s = 0 and drive 10 m forward: crosses the wrap
    a0 = -5.0 / R
    t, xy = arc_drive(R, 5.0, 2.0, a0=a0)
    tracker, laps = detect_laps(c, t, xy, long_limits())
    s = tracker.odom.array("s")
    assert s[0] > c.length - 6 and s[-1] < 6                      # really crossed the wrap
    assert tracker.odom.array("progress")[-1] == pytest.approx(10.0, abs=0.02)
    assert not laps[0].finished


def test_off_track_is_detected_on_the_first_sample_beyond_half_width_plus_margin():
    c = circle()
    t, xy = arc_drive(R, 8.0, 5.0)
    # drift outwards 0.5 m per sample after 2 s: lateral -4.0 is still on (3 + 1.25), -4.5 is off
    drift = np.clip((t - 2.0) * HZ * 0.5, 0.0, None)
    xy = xy * ((R + drift) / R)[:, None]
    tracker, laps = detect_laps(c, t, xy, long_limits(off_track_margin=1.25))
    assert laps[0].dnf_reason == "off_track"
    i = int(np.argmax(drift > 4.25))
    assert laps[0].t_end == pytest.approx(t[i])
    assert "lateral" in laps[0].detail
    m = tracker.lap_metrics(laps[0])
    assert m["deviation_max"] == pytest.approx(4.5, abs=0.01)


def test_timeout_defaults_from_the_circuit_length():
    c = circle()
    assert default_timeout(c.length) == pytest.approx(c.length / 2.0)
    tracker = RunTracker(c, LapLimits())
    assert tracker.timeout == pytest.approx(c.length / 2.0)
    assert RunTracker(c, LapLimits(timeout=7.0)).timeout == 7.0
    t, xy = arc_drive(R, 1.0, 10.0)        # 1 m/s: slower than the 7 s timeout allows a lap
    _, laps = detect_laps(c, t, xy, LapLimits(timeout=7.0))
    assert laps[0].dnf_reason == "timeout" and laps[0].t_end == pytest.approx(7.0)


def test_the_run_starts_at_the_first_command_not_before():
    c = circle()
    # 30 s standing still before the brain speaks: neither stuck nor timeout, lap time from arming
    t_wait = np.arange(0.0, 30.0, 1 / HZ)
    t, xy = arc_drive(R, 10.0, 20.0)
    t_all = np.concatenate([t_wait, t + 30.0])
    xy_all = np.concatenate([np.repeat(xy[:1], len(t_wait), axis=0), xy])
    tracker, laps = detect_laps(c, t_all, xy_all, LapLimits(timeout=25.0), t_arm=30.0)
    assert laps[0].completed
    assert laps[0].t_start == pytest.approx(30.0)
    assert laps[0].t_end - laps[0].t_start == pytest.approx(2 * math.pi * R / 10.0, abs=2e-3)


def test_arming_after_odometry_arrived_picks_the_last_sample_at_or_before_it():
    c = circle()
    tracker = RunTracker(c, long_limits())
    t, xy = arc_drive(R, 10.0, 1.0)
    for ti, (x, y) in zip(t, xy):
        tracker.add_odom(ti, x, y)
    assert not tracker.armed and tracker.laps == []
    tracker.arm(0.52)                    # samples every 0.05 s: the run starts at 0.50
    assert tracker.laps[0].t_start == pytest.approx(0.50)
    assert tracker.odom.array("progress")[-1] == pytest.approx(5.0, abs=0.01)


def test_abort_records_wall_clock_reasons():
    c = circle()
    tracker = RunTracker(c, long_limits())
    span = tracker.abort("brain_died", detail="no command")
    assert span.lap == 1 and span.dnf_reason == "brain_died" and tracker.done
    assert tracker.abort("interrupted") is None           # only once
    tracker = RunTracker(c, long_limits())
    t, xy = arc_drive(R, 10.0, 3.0)
    detect = detect_laps(c, t, xy, long_limits())[0]
    span = detect.abort("interrupted")
    assert span.t_end == pytest.approx(3.0)
    assert detect.lap_metrics(span)["distance"] == pytest.approx(30.0, abs=0.05)


def test_brain_stats_commands_and_camera_metrics():
    c = circle()
    tracker = RunTracker(c, long_limits())
    t, xy = arc_drive(R, 10.0, 10.0)
    inference = [0.010, 0.020, 0.030, 0.040]
    for i, ti in enumerate(np.arange(0.0, 10.0, 0.1)):          # 10 Hz brain, 5 skipped per 10 frames
        tracker.add_stats(ti, inference_time=inference[i % 4], iteration_time=0.05, period=0.2,
                          skipped_frames=i // 2, v=5.0, w=0.1 * (i % 2), backend="fake")
        tracker.add_command(ti, 5.0, 0.1 * (i % 2))
    for ti in np.arange(0.0, 10.0, 0.05):
        tracker.add_camera(ti)
    tracker.arm(0.0)
    for ti, (x, y) in zip(t, xy):
        tracker.add_odom(ti, x, y, wall=2.0 * ti)               # sim runs at half the wall speed
    m = tracker.lap_metrics(tracker.laps[0])
    assert m["brain_iterations"] == 100
    assert m["brain_frequency_sim"] == pytest.approx(10.0)
    assert m["brain_frequency_wall"] == pytest.approx(5.0)        # 1 / period
    assert m["brain_frequency_bm"] == pytest.approx(20.0)         # 1 / iteration_time, BM's figure
    assert m["inference_time_mean"] == pytest.approx(0.025)
    assert m["inference_time_p50"] == pytest.approx(0.025)
    assert m["inference_time_p99"] == pytest.approx(0.040)
    assert m["inference_time_max"] == pytest.approx(0.040)
    assert m["real_time_factor"] == pytest.approx(0.5) and m["rtf_source"] == "wall clock"
    assert m["camera_fps_sim"] == pytest.approx(20.0)
    assert m["suddenness"] == pytest.approx(0.1)
    assert m["skipped_frames"] == 49
    assert m["backend_reported"] == "fake"
    assert math.isnan(m["cpu_wait_brain"]) and math.isnan(m["cpu_wait_sim"])   # never sampled
    # without a wall clock (offline) the RTF comes from the brain's own periods: 0.1 s sim per 0.2 s
    offline = RunTracker(c, long_limits())
    offline.stats = tracker.stats
    offline.arm(0.0)
    for ti, (x, y) in zip(t, xy):
        offline.add_odom(ti, x, y)
    mo = offline.lap_metrics(offline.laps[0])
    assert mo["real_time_factor"] == pytest.approx(0.5) and mo["rtf_source"] == "brain periods"


def test_small_pure_functions():
    assert bm_deviation([0.0, 0.0]) == 1.0
    assert bm_deviation([0.25]) == pytest.approx(1000 ** 0.25)
    assert suddenness([1.0, 1.0, 4.0], [0.0, 0.0, 4.0]) == pytest.approx(2.5)   # (0 + 5) / 2
    assert suddenness([1.0], [0.0]) == 0.0
    with pytest.raises(ValueError, match="laps"):
        LapLimits(laps=0).check()


def test_the_start_does_not_depend_on_whether_arming_or_odometry_arrives_first():
    """Live, the brain's first stats may arrive before or after the odometry of that instant; the
    offline replay sees a different interleaving. Same start either way."""
    c = circle()
    t, xy = arc_drive(R, 10.0, 2.0)
    late = RunTracker(c, long_limits())
    for ti, (x, y) in zip(t, xy):
        late.add_odom(ti, x, y)
    late.arm(0.5)
    early = RunTracker(c, long_limits())
    early.arm(0.5)
    for ti, (x, y) in zip(t, xy):
        early.add_odom(ti, x, y)
    assert late.laps[0].t_start == early.laps[0].t_start == pytest.approx(0.5)
    np.testing.assert_array_equal(late.odom.array("progress"), early.odom.array("progress"))


def test_a_reset_to_the_start_late_in_the_lap_is_no_lap():
    """At 80 % of the lap the car is put back at the start: the shorter way round that is +20 %,
    which a naive unwrap would count as a finished lap. It is a DNF reset instead."""
    c = circle()
    t, xy = arc_drive(R, 10.0, 0.8 * 2 * math.pi * R / 10.0)
    t_after = t[-1] + np.arange(1, 21) * 0.05
    xy_after = np.repeat([[R, 0.0]], len(t_after), axis=0)
    tracker, laps = detect_laps(c, np.concatenate([t, t_after]), np.concatenate([xy, xy_after]), long_limits())
    assert len(laps) == 1 and not laps[0].completed and laps[0].dnf_reason == "reset"
    assert laps[0].t_end == pytest.approx(t[-1])
    m = tracker.lap_metrics(laps[0])
    assert m["percentage"] == pytest.approx(80.0, abs=0.2)
    assert m["deviation_max"] < 0.01                         # the teleported pose is not in the lap


def test_cumulative_counters_survive_a_restarted_brain():
    from pilotnet_brains.metrics import counter_increase

    assert counter_increase([3, 5, 9], start=2) == 7
    assert counter_increase([3, 5, 1, 4], start=0) == 5 + 4        # restarted at 1 after 5
    assert counter_increase([], start=4) == 0


def test_bm_deviation_is_per_red_line_point_not_per_sample():
    """Half the lap 0.4 m outside the line at 2 m/s, the other half on it at 20 m/s: per odometry
    sample the mean |lateral| is dominated by the slow half; Behavior Metrics' deviation takes
    each red-line point once, so its mean distance is half of 0.4 m."""
    c = circle()
    t1, xy1 = arc_drive(R + 0.4, 2.0, math.pi * (R + 0.4) / 2.0)            # half a turn, slow
    t2, xy2 = arc_drive(R, 20.0, math.pi * R / 20.0 + 1.0, a0=math.pi)       # the rest, fast, on the line
    t = np.concatenate([t1, t1[-1] + 1.0 / HZ + t2])
    xy = np.concatenate([xy1, xy2])
    tracker, laps = detect_laps(c, t, xy, long_limits())
    m = tracker.lap_metrics(laps[0])
    assert laps[0].completed
    assert m["deviation_mae"] > 0.3                                         # per sample
    assert m["deviation_bm_mean"] == pytest.approx(0.2, abs=0.02)           # per red-line point
    assert m["deviation_bm_1000pow"] == pytest.approx((1000 ** 0.4 + 1) / 2, rel=0.05)


def test_a_car_stopped_against_a_wall_is_crashed_and_its_contacts_are_counted():
    from pilotnet_brains.circuits import load_circuit

    c = load_circuit("simple_circuit")
    x, y, yaw = c.start_pose
    # 4 s along the line at 5 m/s (the first straight), then nosed into the right wall and held
    t_drive = np.arange(0.0, 4.0, 1.0 / HZ)
    s = c.start_s + 5.0 * t_drive
    drive = np.column_stack([c.point_at(s), c.heading_at(s)])
    s_hit = s[-1] + 1.0
    p, h = c.point_at(s_hit)[0], c.heading_at(s_hit)[0]
    nose = c.wall_offset - 0.457                        # the footprint's front at the wall's face
    n = np.array([math.sin(h), -math.cos(h)])          # towards the right wall
    pressed = np.tile([*(p + n * nose), h - math.pi / 2], (60, 1))
    t = np.concatenate([t_drive, t_drive[-1] + 0.05 * np.arange(1, 61)])
    tracker, laps = detect_laps(c, t, np.concatenate([drive, pressed]))
    assert laps[0].dnf_reason == "crashed", laps[0]
    m = tracker.lap_metrics(laps[0])
    assert m["wall_contacts"] == 1 and m["wall_contact_time"] == pytest.approx(1.0, abs=0.1)
    assert laps[0].t_end == pytest.approx(t_drive[-1] + 0.05 + 1.0, abs=0.06)
    # The same poses without yaw: no footprint, so no contact and no crash (stuck later instead).
    tracker2, laps2 = detect_laps(c, t, np.concatenate([drive, pressed])[:, :2])
    assert laps2[0].dnf_reason != "crashed" and tracker2.lap_metrics(laps2[0])["wall_contacts"] == 0


def test_cpu_wait_is_the_rate_of_the_cumulative_wait_over_the_laps_wall_time():
    c = circle()
    tracker = RunTracker(c, long_limits())
    t, xy = arc_drive(R, 10.0, 10.0)
    tracker.arm(0.0)
    # samples every 0.5 wall s from before the lap to after it; the lap spans wall 100..~100+2*T
    for k in range(-2, 60):
        wall = 100.0 + 0.5 * k
        tracker.add_cpu_wait(wall, 0.02 * wall, None if k % 2 else 0.5 * wall)   # the sim unknown at times
    for ti, (x, y) in zip(t, xy):
        tracker.add_odom(ti, x, y, wall=100.0 + 2.0 * ti)
    m = tracker.lap_metrics(tracker.laps[0])
    assert m["cpu_wait_brain"] == pytest.approx(0.02) and m["cpu_wait_sim"] == pytest.approx(0.5)


def test_wait_share_edges():
    wall = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    waited = np.array([0.0, 0.1, 0.1, 0.4, 0.4])
    assert wait_share(wall, waited, 1.0, 3.0) == pytest.approx(0.15)            # samples at both ends
    assert wait_share(wall, waited, 0.5, 3.5) == pytest.approx(0.4 / 4.0)       # the samples around them
    assert wait_share(wall, waited, -5.0, 2.5) == pytest.approx(0.4 / 3.0)      # none before the start
    assert wait_share(wall, waited[::-1].copy(), 0.0, 4.0) == 0.0                # a thread ended: never negative
    for args in ((1.0, 1.0), (float("nan"), 2.0), (3.0, 1.0)):
        assert math.isnan(wait_share(wall, waited, *args))
    assert math.isnan(wait_share(wall[:1], waited[:1], 0.0, 4.0))
    assert math.isnan(wait_share(wall, np.full(5, np.nan), 0.0, 4.0))
