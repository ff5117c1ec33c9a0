"""Shared fixtures: a private ROS master per test session and a launcher for the package's launch files.

Unit tests (test/unit) never touch these fixtures and run without a master.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import time

import pytest

from pilotnet_brains.backends.registry import BACKENDS, missing_module, post_training_cpu_methods

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@pytest.fixture(scope="session")
def ros_master():
    """A private roscore on a free port with this process's rospy node initialised against it.

    Yields the master URI. rospy can be initialised once per process, so one master serves the
    whole session; launches in tests set every parameter they rely on (use_sim_time included).
    """
    from pilotnet_brains.ros.master import private_master

    with private_master("pytest") as uri:
        yield uri


@pytest.fixture
def roslaunch_files(ros_master):
    """Factory: start launch files (absolute paths or 'launch/x.launch' relative to the package)
    with ``name:=value`` args; every launch is shut down at test teardown."""
    import roslaunch.parent
    import roslaunch.rlutil

    started = []

    def start(path: str, **args):
        if not os.path.isabs(path):
            path = os.path.join(ROOT, path)
        argv = [f"{k}:={v}" for k, v in args.items()]
        uuid = roslaunch.rlutil.get_or_generate_uuid(None, False)
        parent = roslaunch.parent.ROSLaunchParent(uuid, [(path, argv)], is_core=False,
                                                  force_required=False)
        parent.start()
        started.append(parent)
        return parent

    yield start
    for parent in reversed(started):
        parent.shutdown()


def run_tool(*argv: str, timeout: float = 300, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run one of the package's executables (scripts/ or brains/) as a user types it."""
    exe = argv[0]
    for folder in ("scripts", "brains"):
        candidate = os.path.join(ROOT, folder, exe)
        if os.path.exists(candidate):
            exe = candidate
            break
    proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


# --- PilotNet models and optimized artifacts (models/backends/optimize helper) -------------------------

#: The CPU methods converted once per session by ``pilotnet_artifacts`` (no fine-tuning).
CPU_METHODS = tuple(post_training_cpu_methods())
#: torch is not installed in every lane (make test-py38 has none: see the torch marker).
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def wait_connected(pub, subs, what: str, timeout: float = 20.0) -> None:
    """Wait until the publisher ``pub`` and every subscriber in ``subs`` have a peer; else fail
    naming ``what`` did not connect."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pub.get_num_connections() > 0 and all(s.get_num_connections() > 0 for s in subs):
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} did not connect within {timeout} s")


def needs_torch(name: str) -> bool:
    """Does the backend/method ``name`` need torch (its runtime or its parent model)?"""
    spec = BACKENDS[name]
    return spec.runtime == "torch" or spec.parent == "torch"


def runtime_installed(name: str) -> bool:
    """Is the runtime of backend ``name`` installed here (openvino has no Python 3.8 wheel)?"""
    return not missing_module(BACKENDS[name])


needs_openvino = pytest.mark.skipif(not runtime_installed("openvino_fp32"),
                                    reason="openvino is not installed (no Python 3.8 wheel)")


def method_params(names, slow=()):
    """``names`` for parametrize, those that need torch marked ``torch``, those in ``slow`` marked
    ``slow``, those whose runtime is not installed here skipped."""
    return [pytest.param(n, marks=[pytest.mark.torch] * needs_torch(n) + [pytest.mark.slow] * (n in slow) + [
        pytest.mark.skipif(not runtime_installed(n), reason=f"{BACKENDS[n].runtime} is not installed")])
        for n in names]


@pytest.fixture(scope="session")
def pilotnet_artifacts(tmp_path_factory):
    """Random-weight base models (tf_keras + torch, seed 0) and every CPU artifact built from them
    once per session in a temp folder, calibrated on synthetic frames; plus 16 test inputs and the
    base models' reference outputs. Returns a dict: dir, base {framework: path}, paths {method: path},
    x float32 (16, 66, 200, 3), ref {framework: (16, 2)}. Without torch: the tf_keras side only."""

    from pilotnet_brains.models import save_random_base_models
    from pilotnet_brains.optimize import build
    from pilotnet_brains.optimize.calibration import synthetic_frames

    folder = str(tmp_path_factory.mktemp("pilotnet_models"))
    base = save_random_base_models(folder, seed=0, frameworks=("tf_keras", "torch") if HAVE_TORCH else ("tf_keras",))
    paths = {}
    for name in (m for m in CPU_METHODS if (HAVE_TORCH or not needs_torch(m)) and runtime_installed(m)):
        spec = BACKENDS[name]
        out = os.path.join(folder, "build", name + spec.suffix)
        paths[name] = build(name, base=base[spec.parent], data="synthetic:64", out=out, progress=False)
    paths["keras"] = base["tf_keras"]
    x = synthetic_frames(16, seed=123)

    from pilotnet_brains.models import tf_pilotnet

    ref = {"tf_keras": tf_pilotnet.load(base["tf_keras"])(x, training=False).numpy()}
    if HAVE_TORCH:
        import torch

        from pilotnet_brains.models import torch_pilotnet

        with torch.inference_mode():
            ref["torch"] = torch_pilotnet.load(base["torch"])(torch.from_numpy(x)).numpy()
    return {"dir": folder, "base": base, "paths": paths, "x": x, "ref": ref}


def open_circuit(folder, name: str = "simple_circuit", road_width: float = 8.0) -> str:
    """Path of a copy of a packaged circuit without walls and with an ``road_width`` m road, for
    tests where the car must be free to leave the road (off_track) or to drive any curve."""
    import yaml

    from pilotnet_brains.circuits import circuit_path

    data = yaml.safe_load(open(circuit_path(name)))
    data.pop("walls", None)
    data.update(name=f"{name}_open", road_width=road_width)
    path = os.path.join(str(folder), f"{name}_open.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path
