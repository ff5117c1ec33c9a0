# The two commands that matter (see README):  make demo   and   make test
# Every target installs what is missing first (tools/bootstrap.sh, idempotent, seconds when done).
SHELL := /bin/bash
RUN := source tools/env.sh &&

.PHONY: setup demo artifact test test-all test-slow test-py38 keras-h5 lint clean help models
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

setup:  ## install Debian packages, the .venv and the catkin workspace (idempotent)
	@tools/bootstrap.sh

BACKEND ?= tflite_int8
demo: setup  ## one lap of SimpleCircuit with BACKEND (default tflite_int8) on a private ROS master, then the metrics table (ARGS="name:=value ...")
	@$(MAKE) --no-print-directory artifact BACKEND=$(BACKEND)
	@$(RUN) tools/private_roslaunch pilotnet_brains simple_circuit.launch backend:=$(BACKEND) $(ARGS)

artifact: setup  ## build BACKEND's artifact from the base model if it is missing or stale
	@$(RUN) python -c "import sys; from pilotnet_brains.optimize import METHODS, is_up_to_date; \
	  sys.exit(0 if '$(BACKEND)' not in METHODS or is_up_to_date('$(BACKEND)') else 1)" \
	  || { $(MAKE) --no-print-directory data/calibration/summary.json && \
	       $(RUN) python scripts/optimize $(BACKEND) --data $(or $(DATA),data/calibration); }

data/calibration/summary.json:  # 200 frames from the training circuits: calibration for post-training quantization
	@$(RUN) python scripts/collect_dataset data/calibration --episodes 1 --episode-frames 20 --force

data/train/summary.json:  # the training dataset (22,400 frames, about 9 minutes on a 2-core machine)
	@$(RUN) python scripts/collect_dataset data/train --force

data/test/summary.json:  # the test set: one clean lap per evaluation circuit
	@$(RUN) python scripts/collect_dataset data/test --test --force

test: setup  ## the default suite (unit + ROS integration; slow suites excluded)
	@$(RUN) python -m pytest $(PYTEST_ARGS)

test-slow: setup  ## only the slow suites (full laps of every circuit, training)
	@$(RUN) python -m pytest -m slow $(PYTEST_ARGS)

test-all: setup  ## everything
	@$(RUN) python -m pytest -m "slow or not slow" $(PYTEST_ARGS)

test-py38: models/build/pilotnet_tf_weights.h5  ## the unit tests without ROS or torch on CPython 3.8 (Noetic's Python), in .venv-py38 (tools/test_py38.sh)
	@tools/test_py38.sh $(PYTEST_ARGS)

keras-h5: models/build/pilotnet_tf_weights.h5  ## the base Keras model's weights as HDF5, which TensorFlow 2.13 (Python 3.8) loads

models/build/pilotnet_tf_weights.h5: models/pilotnet_tf.keras models/pilotnet_tf.keras.meta.json | setup
	@$(RUN) python -c "from pilotnet_brains.models import tf_pilotnet; print(tf_pilotnet.export_weights('$<', '$@'))"

models: setup  ## build every optimized artifact missing or stale under models/build (DATA=training frames; default data/train, collected if missing)
	@$(if $(DATA),,$(MAKE) --no-print-directory data/train/summary.json &&) $(RUN) python scripts/optimize --all --data $(or $(DATA),data/train)

lint: setup  ## ruff (target Python 3.8)
	@$(RUN) ruff check .

clean:  ## remove the venvs, the workspace and built artifacts (results/ is kept)
	rm -rf .venv .venv-py38 .build models/build

.PHONY: benchmark
benchmark: setup  ## online benchmark campaign (CAMPAIGN=default|realtime|tiny|file.yaml, JOBS=N): results/benchmarks/<campaign>/report.md; run again to resume
	@$(RUN) python scripts/benchmark $(or $(CAMPAIGN),default) --jobs $(or $(JOBS),1) $(ARGS)
