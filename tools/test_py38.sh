#!/usr/bin/env bash
# make test-py38: the unit tests that need neither ROS nor torch, on CPython 3.8 (the Python of Ubuntu
# 20.04 + ROS Noetic), in .venv-py38: pyenv's (or PATH's) python3.8 + tools/requirements-py38.txt,
# rebuilt when that file changes. PYTHON38=/path/to/python3.8 picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON38:-}
if [ -z "$py" ]; then
  for c in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.8*/bin/python3.8 "$(command -v python3.8 || true)"; do
    if [ -n "$c" ] && [ -x "$c" ] && "$c" -V > /dev/null 2>&1; then py=$c; break; fi
  done
fi
[ -n "$py" ] || { echo "test-py38: no CPython 3.8 found: pyenv install 3.8, or PYTHON38=/path/to/python3.8" >&2; exit 2; }
hash=$( (cat tools/requirements-py38.txt; "$py" -V) | sha256sum | cut -c1-16)
if [ ! -x .venv-py38/bin/python ] || [ "$(cat .venv-py38/.stamp 2>/dev/null)" != "$hash" ]; then
  echo "[test-py38] creating .venv-py38 with $("$py" -V) (downloads TensorFlow 2.13 and the 3.8 runtimes, about 700 MB)"
  [ -x .venv-py38/bin/python ] || "$py" -m venv .venv-py38
  .venv-py38/bin/pip install -q --progress-bar off -r tools/requirements-py38.txt
  echo "$hash" > .venv-py38/.stamp
fi
# Nothing of the Debian 3.11 environment (ROS, the venv, the devel space): the package from src/.
exec env -u ROS_PACKAGE_PATH -u CMAKE_PREFIX_PATH PYTHONPATH="$PWD/src" PYTHONNOUSERSITE=1 TF_CPP_MIN_LOG_LEVEL=2 \
  PATH="$PWD/.venv-py38/bin:/usr/bin:/bin" \
  .venv-py38/bin/python -m pytest test/unit -m "not slow and not ros and not torch" -p no:cacheprovider "$@"
