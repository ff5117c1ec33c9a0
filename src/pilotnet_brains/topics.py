"""ROS names of the Gazebo F1 interface: the one place they are spelled out.

Nodes use them as defaults for relative, remappable names.
"""
from __future__ import annotations

CAMERA_IMAGE = "/F1ROS/cameraL/image_raw"
CAMERA_INFO = "/F1ROS/cameraL/camera_info"
CMD_VEL = "/F1ROS/cmd_vel"
ODOM = "/F1ROS/odom"
CLOCK = "/clock"
BRAIN_STATS = "/brain/stats"
LAP_RESULTS = "/lap_metrics/laps"
RUN_IDENTITY = "/lap_metrics/identity"   # std_msgs/String, JSON: written first into a run's bag by the recorder

RESET_WORLD = "/gazebo/reset_world"
RESET_SIMULATION = "/gazebo/reset_simulation"
PAUSE_PHYSICS = "/gazebo/pause_physics"
UNPAUSE_PHYSICS = "/gazebo/unpause_physics"

ODOM_FRAME = "odom"
BASE_FRAME = "xf1"
