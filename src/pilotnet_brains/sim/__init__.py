"""The embedded F1 simulator core (pure numpy/OpenCV, no ROS): kinematics and the camera renderer."""
from __future__ import annotations

from pilotnet_brains.sim.kinematics import integrate
from pilotnet_brains.sim.render import CameraConfig, Look, Renderer, render_top_view
from pilotnet_brains.sim.simulator import SimConfig, Simulator

__all__ = ["CameraConfig", "Look", "Renderer", "SimConfig", "Simulator", "integrate", "render_top_view"]
