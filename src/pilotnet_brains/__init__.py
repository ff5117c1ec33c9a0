"""pilotnet_brains: PilotNet brains, an embedded F1 simulator, lap metrics and model tools.

Everything in this package except ``pilotnet_brains.ros`` is plain Python without rospy.
"""
from __future__ import annotations

import os

__version__ = "0.1.0"

#: Root of the package source tree (the folder holding package.xml).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
