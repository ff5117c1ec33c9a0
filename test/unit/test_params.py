"""Reading a node's ~params from its dataclass (pilotnet_brains.params), and its --help section."""
from __future__ import annotations

from dataclasses import fields

import pytest

from pilotnet_brains.metrics import LapLimits
from pilotnet_brains.params import (
    BrainParams,
    LiveViewParams,
    MetricsParams,
    RecorderParams,
    SimParams,
    params_help,
    read_params,
)

ALL = (SimParams, BrainParams, MetricsParams, LapLimits, LiveViewParams, RecorderParams)


def test_unset_params_are_the_dataclass_defaults_and_set_ones_take_the_defaults_type():
    assert read_params(SimParams(), {}.get) == SimParams()
    got = read_params(SimParams(), {"rtf": "2", "seed": 3.0, "variation": "True", "headless": False,
                                    "camera_height": 0.2, "circuit": None}.get)
    assert (got.rtf, got.seed, got.variation, got.headless, got.camera_height, got.circuit) == \
        (2.0, 3, True, False, "0.2", "")
    assert type(got.rtf) is float and type(got.seed) is int
    assert read_params(RecorderParams(), {"topics": ["/a", "/b"]}.get).topics == ("/a", "/b")
    # the names asked for are the field names (the ROS getter adds the "~")
    asked = []
    read_params(LapLimits(), lambda name, default: asked.append(name) or default)
    assert asked == [f.name for f in fields(LapLimits)]


def test_a_bad_value_is_refused_naming_the_param():
    with pytest.raises(ValueError, match="~headless 'yes': use true or false"):
        read_params(SimParams(), {"headless": "yes"}.get)
    with pytest.raises(ValueError):
        read_params(LapLimits(), {"laps": "two"}.get)


def test_instance_defaults_are_kept():
    """The explicit_brain executable's ~brain default is explicit."""
    assert read_params(BrainParams(brain="explicit"), {}.get).brain == "explicit"
    assert "~brain (str, default explicit):" in params_help(BrainParams(brain="explicit"))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_help_lists_every_field_with_its_default(cls):
    text = params_help(cls)
    for f in fields(cls):
        assert f.metadata["help"]
        line = next(line for line in text.splitlines() if line.startswith(f"  ~{f.name} ("))
        d = f.default
        shown = str(d).lower() if isinstance(d, bool) else d[0] if isinstance(d, tuple) else '""' if d == "" else d
        assert f"default {shown}" in line, line


def test_sim_check_names_the_param():
    SimParams(mode="lockstep").check()
    with pytest.raises(ValueError, match=r"~mode 'foo': use one of \['realtime', 'lockstep'\]"):
        SimParams(mode="foo").check()
    with pytest.raises(ValueError, match="~rtf 0.0: must be > 0"):
        SimParams(rtf=0.0).check()
