# The two commands that matter (see README):  make demo   and   make test
# Every target installs what is missing first (tools/bootstrap.sh, idempotent, seconds when done).
SHELL := /bin/bash
RUN := source tools/env.sh &&

.PHONY: setup demo test test-all test-slow lint clean help models
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

setup:  ## install Debian packages, the .venv and the catkin workspace (idempotent)
	@tools/bootstrap.sh

demo: setup  ## one lap of SimpleCircuit in the embedded simulator, then the metrics table
	@$(RUN) roslaunch pilotnet_brains simple_circuit.launch $(ARGS)

test: setup  ## the default suite (unit + ROS integration; slow suites excluded)
	@$(RUN) python -m pytest $(PYTEST_ARGS)

test-slow: setup  ## only the slow suites (full laps of every circuit, training)
	@$(RUN) python -m pytest -m slow $(PYTEST_ARGS)

test-all: setup  ## everything
	@$(RUN) python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

models: setup  ## build every optimized artifact missing or stale under models/build (DATA=calibration frames: DLS folder or .npy)
	@$(RUN) python scripts/optimize --all $(if $(DATA),--data $(DATA),)

lint: setup  ## ruff (target Python 3.8)
	@$(RUN) ruff check .

clean:  ## remove the venv, the workspace and built artifacts (results/ is kept)
	rm -rf .venv .build models/build
