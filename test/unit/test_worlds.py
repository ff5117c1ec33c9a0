"""Generated Gazebo worlds: valid SDF (``ign sdf -k``), the F1 interface, textures present and up to
date with the circuit files."""
from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
from conftest import ROOT

from pilotnet_brains import topics
from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit
from pilotnet_brains.worlds import ground_model_name, tile_image, tiles_for, world_sdf

WORLDS = os.path.join(ROOT, "worlds")
needs_ign = pytest.mark.skipif(shutil.which("ign") is None, reason="ignition-tools (ign sdf) not installed")


def ign_check(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ign", "sdf", "-k", path], capture_output=True, text=True, timeout=120)


@needs_ign
@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_world_is_valid_sdf(name):
    model = os.path.join(WORLDS, "models", ground_model_name(load_circuit(name)), "model.sdf")
    for path in (os.path.join(WORLDS, f"{name}.world"), model):
        proc = ign_check(path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Valid." in proc.stdout


@needs_ign
def test_ign_rejects_a_broken_world(tmp_path):
    text = open(os.path.join(WORLDS, "simple_circuit.world")).read()
    bad = tmp_path / "bad.world"
    bad.write_text(text.replace("<max_step_size>0.001</max_step_size>", "<max_step_size>fast</max_step_size>"))
    assert ign_check(str(bad)).returncode != 0


@pytest.mark.parametrize("name", EVALUATION_CIRCUITS)
def test_world_has_the_f1_interface_and_textures(name):
    c = load_circuit(name)
    path = os.path.join(WORLDS, f"{name}.world")
    root = ET.parse(path).getroot()
    world = root.find("world")
    f1 = world.find("model[@name='f1']")
    pose = [float(v) for v in f1.find("pose").text.split()]
    assert pose == pytest.approx([c.start_pose[0], c.start_pose[1], 0, 0, 0, c.start_pose[2]])
    plugins = {p.get("filename"): p for p in f1.iter("plugin")}
    move = plugins["libgazebo_ros_planar_move.so"]
    assert move.findtext("robotNamespace") + "/" + move.findtext("commandTopic") == topics.CMD_VEL
    assert move.findtext("robotNamespace") + "/" + move.findtext("odometryTopic") == topics.ODOM
    assert (move.findtext("odometryFrame"), move.findtext("robotBaseFrame")) == (topics.ODOM_FRAME, topics.BASE_FRAME)
    assert float(move.findtext("odometryRate")) == 20.0
    cam = plugins["libgazebo_ros_camera.so"]
    assert "/" + cam.findtext("cameraName") + "/" + cam.findtext("imageTopicName") == topics.CAMERA_IMAGE
    assert "/" + cam.findtext("cameraName") + "/" + cam.findtext("cameraInfoTopicName") == topics.CAMERA_INFO
    sensor = f1.find(".//sensor[@type='camera']")
    assert float(sensor.findtext("update_rate")) == 20.0
    assert float(sensor.findtext("camera/horizontal_fov")) == 1.57
    assert (sensor.findtext("camera/image/width"), sensor.findtext("camera/image/height")) == ("640", "480")
    assert float(sensor.findtext("camera/clip/far")) == 15.0
    assert sensor.findtext("pose").split()[3:] == ["0", "0", "0"]   # no tilt
    # Every tile's material is defined and its texture is committed.
    model_dir = os.path.join(WORLDS, "models", ground_model_name(c))
    script = open(os.path.join(model_dir, "materials", "scripts", f"{ground_model_name(c)}.material")).read()
    names = [v.findtext("material/script/name") for v in world.iter("visual")
             if v.findtext("material/script/name", "").startswith("pilotnet/")]
    assert len(names) == len(tiles_for(c)) + 1
    for n in names:
        assert f"material {n}\n" in script
    textures = os.listdir(os.path.join(model_dir, "materials", "textures"))
    assert len(textures) == len(tiles_for(c))
    assert os.path.isfile(os.path.join(model_dir, "model.config"))


def test_committed_world_is_up_to_date_with_the_circuit_file():
    c = load_circuit("simple_circuit")
    tiles = tiles_for(c)
    assert open(os.path.join(WORLDS, "simple_circuit.world")).read() == world_sdf(c, tiles)
    i, j = tiles[len(tiles) // 2]
    committed = cv2.imread(os.path.join(WORLDS, "models", ground_model_name(c), "materials", "textures",
                                        f"simple_circuit_tile_{i}_{j}.png"))[:, :, ::-1]
    assert np.array_equal(committed, tile_image(c, i, j))
