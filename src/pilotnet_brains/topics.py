"""ROS names of the Gazebo F1 interface: the one place they are spelled out.

They are absolute (global) names, as Gazebo's F1 car publishes them: a launch ``ns`` does not move
them, so one ROS master holds one run (``make demo`` and the benchmark campaign give each run a
private master). A node's name can still be remapped (``/F1ROS/cmd_vel:=/other``).
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
