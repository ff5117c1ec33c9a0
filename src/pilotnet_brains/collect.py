"""Dataset collection in the embedded simulator, with the privileged pure-pursuit expert.

Why the privileged expert rather than the explicit (camera) brain: it knows the true pose and the
centerline, so its labels are the clean command for every frame, including frames where the car
is off the line -- exactly what recovery needs. The explicit brain's labels would carry its own
perception errors.

Training runs (the training circuits only, both driving directions): each episode starts at a
seeded random point of the lap with a lateral offset and a heading error, and the *executed*
command is the expert's plus perturbations (Ornstein-Uhlenbeck steering noise and occasional
swerves), while the *label* is always the expert's clean command at the frame's pose. Half the
episodes use seeded visual variation (colours, lighting). The test set drives each evaluation
circuit once from its start pose with the clean expert and the default look.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from pilotnet_brains.circuits import EVALUATION_CIRCUITS, TRAINING_CIRCUITS, load_circuit
from pilotnet_brains.dataset import RunWriter
from pilotnet_brains.expert import PurePursuitExpert
from pilotnet_brains.metrics import wrap_signed
from pilotnet_brains.preprocess import V_RANGE, W_RANGE
from pilotnet_brains.reporting import pyplot, write_png
from pilotnet_brains.sim import SimConfig, Simulator


@dataclass
class CollectConfig:
    episodes: int = 5                 # per training circuit and direction
    episode_frames: int = 400         # frames per episode (20 s at 20 Hz)
    seed: int = 0
    max_lateral_offset: float = 0.6   # m, start offset from the line (uniform +-)
    max_heading_offset: float = 0.15  # rad, start heading error (uniform +-)
    steer_noise: float = 0.3          # rad/s, stationary std of the OU steering noise
    steer_noise_tau: float = 0.5      # s, correlation time of the OU noise
    swerve_rate: float = 0.15         # swerves per second
    swerve_w: float = 1.0             # rad/s, max swerve amplitude (uniform [0.4, 1] x this, random sign)
    swerve_duration: float = 0.4      # s
    speed_noise: float = 0.5          # m/s std of executed-speed noise
    variation: bool = True            # seeded visual variation on every other episode


def _clip_label(v: float, w: float):
    return float(np.clip(v, *V_RANGE)), float(np.clip(w, *W_RANGE))


def drive_episode(sim: Simulator, expert: PurePursuitExpert, writer: RunWriter, frames: int,
                  rng: np.random.Generator | None, cfg: CollectConfig, stop_after_lap: bool = False) -> dict:
    """Drive one episode and record (frame, clean expert label); perturb the executed command when
    ``rng`` is given. Ends early if the car comes within 0.3 m of a wall (or of the road edge on a
    circuit without walls) or touches one. Returns episode statistics."""
    circuit = sim.circuit
    dt = 1.0 / sim.config.camera_rate
    half_width = circuit.wall_offset
    ou = 0.0
    swerve_left, swerve = 0.0, 0.0
    s_prev = float(circuit.project(np.array(sim.pose[:2])[None])[0][0])
    travelled, lateral_abs = 0.0, []
    rgb = sim.render()
    for _ in range(frames):
        v, w = _clip_label(*expert(sim.pose))
        writer.add(rgb, v, w, sim.time)
        if rng is not None:
            a = np.exp(-dt / cfg.steer_noise_tau)
            ou = a * ou + np.sqrt(1 - a * a) * cfg.steer_noise * rng.standard_normal()
            if swerve_left <= 0 and rng.random() < cfg.swerve_rate * dt:
                swerve_left = cfg.swerve_duration
                swerve = cfg.swerve_w * rng.uniform(0.4, 1.0) * rng.choice([-1.0, 1.0])
            extra = swerve if swerve_left > 0 else 0.0
            swerve_left -= dt
            v_exec = float(np.clip(v + cfg.speed_noise * rng.standard_normal(), *V_RANGE))
            sim.set_command(v_exec, w + ou + extra)
        else:
            sim.set_command(v, w)
        _, rgb = sim.step_to_next_frame()
        s, lat = circuit.project(np.array(sim.pose[:2])[None])
        travelled += float(wrap_signed(s[0] - s_prev, circuit.length))
        s_prev = float(s[0])
        lateral_abs.append(abs(float(lat[0])))
        if lateral_abs[-1] > half_width - 0.3 or sim.in_contact:
            break
        if stop_after_lap and travelled >= circuit.length:
            break
    return {"frames": len(writer), "travelled_m": round(travelled, 2),
            "mean_abs_lateral_m": round(float(np.mean(lateral_abs)), 4) if lateral_abs else 0.0,
            "left_road": bool(lateral_abs and lateral_abs[-1] > half_width - 0.3)}


def collect_training(out_dir: str, cfg: CollectConfig, circuits=TRAINING_CIRCUITS,
                     progress: bool = True) -> dict:
    """Training runs: circuits x directions x episodes, one DLS run folder each."""
    jobs = [(c, rev, e) for c in circuits for rev in (False, True) for e in range(cfg.episodes)]
    bar = _bar(len(jobs) * cfg.episode_frames, "collecting training frames", progress)
    stats = {}
    sims: dict = {}
    for c, rev, e in jobs:
        key = (c, rev)
        if key not in sims:
            circuit = load_circuit(c, reverse=rev)
            sims[key] = (Simulator(circuit, SimConfig(seed=cfg.seed, variation=cfg.variation)),
                         PurePursuitExpert(circuit))
        sim, expert = sims[key]
        run = f"{c}{'_rev' if rev else ''}_{e:03d}"
        rng = np.random.default_rng([cfg.seed, sum(map(ord, run)), e, int(rev)])
        s0 = rng.uniform(0, sim.circuit.length)
        x, y = sim.circuit.point_at(s0)[0]
        heading = float(sim.circuit.heading_at(s0)[0])
        off = rng.uniform(-cfg.max_lateral_offset, cfg.max_lateral_offset)
        pose = (x - off * np.sin(heading), y + off * np.cos(heading),
                heading + rng.uniform(-cfg.max_heading_offset, cfg.max_heading_offset))
        sim.reset(pose)
        if cfg.variation and e % 2 == 0:
            sim.renderer.set_look(sim.renderer.base_look)   # every other episode keeps the circuit's own look
        writer = RunWriter(os.path.join(out_dir, run))
        st = drive_episode(sim, expert, writer, cfg.episode_frames, rng, cfg)
        writer.close()
        stats[run] = st
        bar.update(cfg.episode_frames)
    bar.close()
    return stats


def collect_test(out_dir: str, seed: int = 0, circuits=EVALUATION_CIRCUITS, progress: bool = True,
                 max_frames: int = 4000) -> dict:
    """Test set: one clean lap of each evaluation circuit from its start pose, default look."""
    stats = {}
    for c in circuits:
        circuit = load_circuit(c)
        sim = Simulator(circuit, SimConfig(seed=seed))
        writer = RunWriter(os.path.join(out_dir, circuit.name))
        st = drive_episode(sim, PurePursuitExpert(circuit), writer, max_frames, None, CollectConfig(),
                           stop_after_lap=True)
        writer.close()
        stats[circuit.name] = st
        if progress:
            print(f"test lap {circuit.name}: {st['frames']} frames, {st['travelled_m']} m")
    return stats


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled)


def write_summary(out_dir: str, stats: dict, cfg: dict) -> str:
    """summary.json (frames per run/circuit, settings) and labels.png (v and w histograms)."""
    from pilotnet_brains.dataset import read_dataset
    from pilotnet_brains.util import atomic_write_text

    samples = read_dataset(out_dir)
    per_circuit: dict = {}
    for run, st in stats.items():
        name = run.rsplit("_", 1)[0] if run[-1].isdigit() else run
        per_circuit[name] = per_circuit.get(name, 0) + st["frames"]
    summary = {"frames": len(samples), "frames_per_circuit": per_circuit, "runs": stats, "config": cfg}
    path = os.path.join(out_dir, "summary.json")
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    v = np.array([s.v for s in samples])
    w = np.array([s.w for s in samples])
    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.2))
    axes[0].hist(v, bins=40, range=V_RANGE, color="tab:blue")
    axes[0].set_xlabel("v (m/s)")
    axes[1].hist(w, bins=60, range=W_RANGE, color="tab:red", log=True)
    axes[1].set_xlabel("w (rad/s)")
    for ax in axes:
        ax.set_ylabel("frames")
    fig.suptitle(f"{len(samples)} frames in {os.path.basename(os.path.normpath(out_dir))}")
    fig.tight_layout()
    write_png(fig, os.path.join(out_dir, "labels.png"), dpi=90, tight=False)
    return path

