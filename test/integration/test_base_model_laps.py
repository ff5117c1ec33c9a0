"""The shipped base models drive: one lap of every evaluation circuit (never trained on) and of
both real training circuits in both directions, through circuit.launch in lockstep, with the
tf_keras model (keras backend) and the torch model (as TorchScript, built from
models/pilotnet_torch.pt). Slow: ~1-2 min per lap."""
from __future__ import annotations

import json
import os
import threading
import time

import pytest

from pilotnet_brains import topics
from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit
from pilotnet_brains.expert import expert_lap

#: Behavior Metrics' best published average speed (m/s) on a circuit: our laps must be as fast.
BM_BEST_SPEED = {"simple_circuit": 8.54, "montreal": 10.23}
#: The laps must stay this close to the red line (m, mean distance of the car's origin).
MAX_MAE = 0.15
#: ... and no slower than this fraction of the expert they learned from.
MIN_SPEED_RATIO = 0.8


@pytest.fixture(scope="module")
def torchscript_artifact(tmp_path_factory):
    from pilotnet_brains.models import torch_base_path
    from pilotnet_brains.optimize import build

    return build("torchscript", base=torch_base_path(), out=str(tmp_path_factory.mktemp("ts") / "ts.pt"),
                 progress=False)


@pytest.mark.slow
@pytest.mark.timeout(1800)   # one full lap of a circuit in real time, on a loaded runner
@pytest.mark.parametrize("backend", ["keras", "torchscript"])
@pytest.mark.parametrize("circuit", list(EVALUATION_CIRCUITS) + ["nurburgring", "nurburgring_reverse",
                                                                  "many_curves", "many_curves_reverse"])
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
        contacts = json.loads(lap.json)["wall_contacts"]
        print(f"{backend} on {circuit}: {lap.lap_time:.2f} s, {lap.average_speed:.2f} m/s "
              f"({lap.average_speed / expert - 1:+.0%} vs the expert's {expert:.2f}), MAE {lap.deviation_mae:.3f} m, "
              f"{contacts} wall contacts")
        assert contacts == 0
        assert lap.deviation_mae <= MAX_MAE
        assert lap.average_speed >= max(BM_BEST_SPEED.get(circuit, 0.0), MIN_SPEED_RATIO * expert)
    finally:
        sub.unregister()
