# Source me: where this checkout keeps its environment.
#   PNB_ROOT  the checkout (the catkin package)
#   PNB_WS    its catkin workspace: outside the checkout, because the workspace's src/ links back to
#             the package, and a link to a folder that contains it makes rosrun's search loop; and
#             in no hidden folder, because rosbash's completion (roslaunch pilotnet_brains <TAB>)
#             skips every path with one. One per checkout (the hash of its path). PILOTNET_WS overrides.
PNB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PNB_WS=${PILOTNET_WS:-$HOME/pilotnet_brains_ws/ws-$(printf %s "$PNB_ROOT" | sha256sum | cut -c1-12)}
