"""The wake-up cost measurement: a real peer process on a real loopback socket, pinned where asked."""
from __future__ import annotations

import os

import pytest

from pilotnet_brains import wakeup


def test_the_sender_is_timed_for_each_placement_of_the_peer_and_gets_its_cpus_back():
    before = os.sched_getaffinity(0)
    result = wakeup.measure(count=30, busy_s=1e-4, idle_s=1e-3)
    assert os.sched_getaffinity(0) == before
    placements = ["same_core", "other_core"] if len(before) > 1 else ["same_core"]
    for where in placements:
        s = result[where]
        assert s["unit"] == "us" and s["n"] == 30 and 0 < s["min"] <= s["p50"] <= s["max"], (where, s)
    assert ("other_core" in result) == (len(before) > 1)
    sentence = wakeup.text(result)
    assert f"{result['same_core']['p50']:.1f} µs" in sentence


def test_a_peer_that_cannot_be_pinned_is_an_error_not_a_number():
    with pytest.raises(RuntimeError, match="peer"):
        wakeup._rounds(peer_cpu=10_000, count=3, busy_s=0.0, idle_s=0.0)
