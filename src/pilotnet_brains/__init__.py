"""pilotnet_brains: PilotNet brains, an embedded F1 simulator, lap metrics and model tools.

Everything in this package except ``pilotnet_brains.ros`` is plain Python without rospy.
"""
from __future__ import annotations

import os

__version__ = "0.1.0"


def package_root() -> str:
    """The folder holding package.xml (the source checkout, or an installed package's share folder).

    In a catkin devel space this ``__init__`` is a relay whose ``__path__`` also lists the source
    folder, so look there; an installed package asks rospkg."""
    for folder in __path__:  # noqa: F821 -- defined for packages
        root = os.path.dirname(os.path.dirname(os.path.realpath(folder)))
        if os.path.exists(os.path.join(root, "package.xml")):
            return root
    import rospkg

    return rospkg.RosPack().get_path("pilotnet_brains")


#: Root of the package (source checkout or installed share folder).
PACKAGE_ROOT = package_root()


def results_root() -> str:
    """Where run folders, campaigns and benchmark results go by default: ``<package>/results`` when
    the user can write there (a checkout), else (a system install) ``$ROS_HOME/pilotnet_brains/results``
    (``~/.ros/...``)."""
    inside = os.path.join(PACKAGE_ROOT, "results")
    if os.access(inside if os.path.isdir(inside) else PACKAGE_ROOT, os.W_OK):
        return inside
    ros_home = os.environ.get("ROS_HOME") or os.path.join(os.path.expanduser("~"), ".ros")
    return os.path.join(ros_home, "pilotnet_brains", "results")
