# Source me: puts the venv first on PATH and overlays the catkin workspace, so that rospy, the
# package's messages, roslaunch/rosrun/rostest and the ML stack are all found.
_pnb_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "$_pnb_root/.build/ws/devel/setup.bash"
export PATH="$_pnb_root/.venv/bin:$PATH"
export TF_USE_LEGACY_KERAS=1          # tf.keras = tf_keras (Keras 2), which tfmot needs
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export PYTHONNOUSERSITE=1
unset _pnb_root
