"""Planar-move kinematics: the car model of Gazebo's ``libgazebo_ros_planar_move`` plugin.

The car is a kinematic body on the ground plane. Every physics step it takes the last command
(v = forward speed in m/s along the car's heading, w = yaw rate in rad/s, both held until the
next command, no timeout) and moves. The step is integrated exactly (an arc of radius v/w), so
the trajectory of a constant command is a circle of radius |v/w| whatever the physics rate.
"""
from __future__ import annotations

import math
from typing import Tuple

Pose = Tuple[float, float, float]


def wrap(a: float) -> float:
    """Angle (rad) wrapped to [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def integrate(pose: Pose, v: float, w: float, dt: float) -> Pose:
    """Pose (x m, y m, yaw rad; world frame) after moving dt s at constant (v m/s, w rad/s)."""
    x, y, yaw = pose
    if abs(w) < 1e-9:
        return x + v * dt * math.cos(yaw), y + v * dt * math.sin(yaw), yaw
    yaw2 = yaw + w * dt
    r = v / w
    return x + r * (math.sin(yaw2) - math.sin(yaw)), y - r * (math.cos(yaw2) - math.cos(yaw)), wrap(yaw2)


def yaw_of(q) -> float:
    """Yaw (rad) of an orientation quaternion with fields x, y, z, w (a planar car's heading)."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
