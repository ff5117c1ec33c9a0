"""The shipped base models drive: one lap of every evaluation circuit (never trained on) through
circuit.launch in lockstep, with the tf_keras model (keras backend) and the torch model (as
TorchScript, built from models/pilotnet_torch.pt when missing). Slow: ~1-2 min per lap."""
from __future__ import annotations

import os
import threading
import time

import pytest

from pilotnet_brains import topics
from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit
from pilotnet_brains.expert import expert_lap

#: The networks must drive within this fraction of the expert's average speed.
SPEED_TOLERANCE = 0.15


@pytest.fixture(scope="module")
def torchscript_artifact(tmp_path_factory):
    from pilotnet_brains.models import torch_base_path
    from pilotnet_brains.optimize import build

    return build("torchscript", base=torch_base_path(), out=str(tmp_path_factory.mktemp("ts") / "ts.pt"),
                 progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["keras", "torchscript"])
@pytest.mark.parametrize("circuit", EVALUATION_CIRCUITS)
def test_base_model_completes_a_lap(roslaunch_files, tmp_path, circuit, backend, torchscript_artifact):
    import rospy
    from pilotnet_brains.msg import LapResult

    from pilotnet_brains.models import tf_base_path

    model = tf_base_path() if backend == "keras" else torchscript_artifact
    assert os.path.exists(model), f"{model} missing: the base models are committed under models/"
    laps = []
    lock = threading.Lock()

    def keep(m):
        with lock:
            laps.append(m)

    sub = rospy.Subscriber(topics.LAP_RESULTS, LapResult, keep)
    try:
        roslaunch_files("launch/circuit.launch", circuit=circuit, brain="pilotnet", backend=backend, model=model,
                        mode="lockstep", results_dir=str(tmp_path), run_id=f"{backend}_{circuit}")
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and not laps:
            time.sleep(0.5)
        assert laps, "no lap result within 900 s"
        lap = laps[0]
        assert lap.completed, (lap.dnf_reason, lap.json)
        assert lap.distance == pytest.approx(load_circuit(circuit).length, rel=0.02)
        expert = expert_lap(circuit)["average_speed"]
        print(f"{backend} on {circuit}: {lap.lap_time:.2f} s, {lap.average_speed:.2f} m/s "
              f"({lap.average_speed / expert - 1:+.0%} vs the expert's {expert:.2f}), MAE {lap.deviation_mae:.3f} m")
        assert lap.deviation_mae <= 0.30
        assert abs(lap.average_speed / expert - 1) <= SPEED_TOLERANCE
    finally:
        sub.unregister()
