#!/usr/bin/env bash
# Install what is missing, idempotently: Debian packages, the Python venv, the catkin workspace.
# A second run checks and returns in seconds. Usage: tools/bootstrap.sh
set -euo pipefail
source "$(dirname "$0")/paths.sh"
root=$PNB_ROOT
cd "$root"
stamps=.build/stamps
mkdir -p "$stamps"

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

# 1. Debian packages: install only those dpkg does not report installed.
mapfile -t wanted < <(grep -v '^\s*#' tools/debian-packages.txt | awk 'NF{print $1}')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 2. The venv: one interpreter for rospy and the ML stack.
req_hash=$(cat tools/requirements.txt tools/requirements-nodeps.txt | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamps/venv" 2>/dev/null)" != "$req_hash" ]; then
  say "creating the Python environment in .venv (about a minute, 3.5 GB)"
  [ -x .venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages .venv
  .venv/bin/pip install -q --progress-bar off -r tools/requirements.txt
  .venv/bin/pip install -q --progress-bar off --no-deps -r tools/requirements-nodeps.txt
  echo "$req_hash" > "$stamps/venv"
fi

# 3. The catkin workspace ($PNB_WS, see tools/paths.sh): src/pilotnet_brains -> this checkout;
#    builds the messages and the devel-space relays whose shebang is the venv's python.
ws=$PNB_WS
mkdir -p "$ws/src"
ln -sfn "$root" "$ws/src/pilotnet_brains"
build_hash=$( (cat CMakeLists.txt package.xml setup.py msg/*.msg; ls brains scripts) | sha256sum | cut -c1-16)
if [ ! -f "$ws/devel/setup.bash" ] || [ "$(cat "$stamps/catkin" 2>/dev/null)" != "$build_hash" ]; then
  say "building the catkin workspace in $ws"
  (cd "$ws" && catkin_make --force-cmake -DPYTHON_EXECUTABLE="$root/.venv/bin/python" -DCATKIN_ENABLE_TESTING=ON > "$root/.build/catkin_make.log" 2>&1) \
    || { tail -30 .build/catkin_make.log; echo "catkin_make failed: see .build/catkin_make.log" >&2; exit 1; }
  echo "$build_hash" > "$stamps/catkin"
fi
say "ready (source tools/env.sh to use it in a shell)"
