"""The launch files' defaults are the nodes' (pilotnet_brains.params): a node param a launch file
sets from an argument's default equals that field's default in the node's dataclass; circuit.launch,
which passes all its arguments on to the includes, declares the same defaults as they do; and it
declares every argument the benchmark campaign passes."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import fields

import pytest
from conftest import ROOT

from pilotnet_brains import campaign as cp
from pilotnet_brains.metrics import LapLimits
from pilotnet_brains.params import BrainParams, LiveViewParams, MetricsParams, RecorderParams, SimParams

LAUNCH = os.path.join(ROOT, "launch")
#: (include file, node name): the dataclasses of the node's ~params.
NODES = {
    ("sim.launch", "f1_sim"): (SimParams,),
    ("brain.launch", "brain"): (BrainParams,),
    ("metrics.launch", "lap_metrics"): (MetricsParams, LapLimits),
    ("metrics.launch", "record_run"): (RecorderParams,),
    ("sim.launch", "live_view"): (LiveViewParams,),
}
#: lap_metrics params that record the run's identity: their default is that of the node they describe
#: (None: the launch's own choice of simulator, the same in every launch file, see below).
IDENTITY = {"brain": BrainParams, "backend": BrainParams, "model": BrainParams, "threads": BrainParams,
            "mode": SimParams, "start_s": SimParams, "sim": None}
#: Read by every node's start-up (ros/startup.py), not by a dataclass.
STARTUP_PARAMS = {"run_token"}
#: circuit.launch's own choice for a full run, unlike the include's default: both start-up waits.
RUN_CHOICES = {"wait_for_odom_subscriber": "10", "wait_for_stats_subscriber": "10"}


def _args(path: str) -> dict[str, str]:
    """The arguments a launch file declares with a plain default (no substitution)."""
    return {a.get("name"): a.get("default") for a in ET.parse(path).getroot().findall("arg")
            if a.get("default") is not None and "$(" not in a.get("default")}


def _defaults(classes) -> dict[str, object]:
    return {f.name: f.default for cls in classes for f in fields(cls)}


@pytest.mark.parametrize("include, node", sorted(NODES))
def test_each_node_param_default_in_the_launch_is_the_dataclass_default(include, node):
    convert_value = pytest.importorskip("roslaunch.loader").convert_value
    path = os.path.join(LAUNCH, "include", include)
    args = _args(path)
    own = _defaults(NODES[include, node])
    element = next(n for n in ET.parse(path).getroot().iter("node") if n.get("name") == node)
    compared = []
    for p in element.findall("param"):
        name, value = p.get("name"), p.get("value")
        assert name in own or name in STARTUP_PARAMS, f"{include} sets ~{name}, which {node} does not read"
        if name not in own or not (value.startswith("$(arg ") and value.endswith(")")):
            continue   # start-up's, or a literal: the launch's choice, not a default
        default = args.get(value[len("$(arg "):-1])
        if default is None:
            continue   # computed ($(eval ...), $(anon ...))
        if node == "lap_metrics" and name in IDENTITY:
            if IDENTITY[name] is None:
                continue
            expected = _defaults([IDENTITY[name]])[name]
        else:
            expected = own[name]
        got = convert_value(default, "auto")
        assert got == expected and isinstance(got, bool) == isinstance(expected, bool), \
            f"{include}: ~{name} defaults to {got!r}, {node} to {expected!r}"
        compared.append(name)
    assert compared, f"{include}: no ~param of {node} set from an argument's default"


def test_circuit_launch_declares_the_includes_defaults():
    top = _args(os.path.join(LAUNCH, "circuit.launch"))
    compared = []
    for include in sorted({include for include, _ in NODES}):
        for name, default in _args(os.path.join(LAUNCH, "include", include)).items():
            if name in top:
                assert top[name] == RUN_CHOICES.get(name, default), f"circuit.launch {name}: {top[name]!r}, " \
                                                                    f"{include}: {default!r}"
                compared.append(name)
    assert set(RUN_CHOICES) < set(compared) and len(compared) > 10, compared


def test_circuit_launch_declares_every_argument_the_campaign_passes():
    declared = {a.get("name") for a in ET.parse(os.path.join(LAUNCH, "circuit.launch")).getroot().findall("arg")}
    campaign = cp.parse_campaign({"circuits": ["simple_circuit"], "backends": ["explicit", "tflite_int8"],
                                  "launch_args": {"camera_rate": 15}}, source="test.yaml")
    passed = {name for run in cp.expand(campaign, campaign.backends) for name in run.launch_args} | {"results_dir"}
    assert {"brain_timeout", "camera_rate", "run_id"} <= passed
    assert passed <= declared, f"circuit.launch does not declare {sorted(passed - declared)}"
