# Source me: puts the venv first on PATH and overlays the catkin workspace, so that rospy, the
# package's messages, roslaunch/rosrun/rostest and the ML stack are all found.
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/paths.sh"
source "$PNB_WS/devel/setup.bash"
export PATH="$PNB_ROOT/.venv/bin:$PATH"
export TF_USE_LEGACY_KERAS=1          # tf.keras = tf_keras (Keras 2), which tfmot needs
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
export PYTHONNOUSERSITE=1
