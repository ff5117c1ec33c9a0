"""``scripts/make_worlds``: Gazebo 11 worlds from the circuit files (:mod:`pilotnet_brains.worlds`)."""
from __future__ import annotations

import argparse
import os
from typing import Sequence

from pilotnet_brains import package_root, worlds
from pilotnet_brains.circuits import EVALUATION_CIRCUITS, load_circuit


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="make_worlds",
        description="Generate Gazebo 11 worlds (worlds/<circuit>.world + worlds/models/pilotnet_<circuit>_road) "
                    "from circuit files: grass, asphalt and red line (meshes), 0.5 m walls (boxes) at the asphalt "
                    "edge, and the f1_renault car at the start pose with libgazebo_ros_planar_move (/F1ROS/cmd_vel, "
                    "/F1ROS/odom) and libgazebo_ros_camera (/F1ROS/cameraL/image_raw). Check a result with: "
                    "ign sdf -k worlds/<circuit>.world")
    ap.add_argument("circuits", nargs="*", default=list(EVALUATION_CIRCUITS),
                    help="circuit names or .yaml paths, + _reverse for the other direction (default: the "
                         "evaluation circuits)")
    ap.add_argument("--out", default=os.path.join(package_root(), "worlds"), help="output folder (default: %(default)s)")
    ap.add_argument("--docs", default="", metavar="DIR",
                    help="instead of worlds, write the README pictures into DIR: <circuit>_top.png (top view with "
                         "the start pose) and <circuit>_camera.png (what the brain's camera sees, f1_sim defaults)")
    args = ap.parse_args(argv)
    for name in args.circuits:
        circuit = load_circuit(name)
        if args.docs:
            for path in worlds.write_docs_pictures(circuit, args.docs):
                print(path)
            continue
        info = worlds.write_world(circuit, args.out)
        print(f"{info['world']}: {info['wall_boxes']} wall boxes; {info['triangles']} road and line triangles "
              f"in {info['model_dir']}")
