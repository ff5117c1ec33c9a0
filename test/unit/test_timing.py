"""The one timing loop, the one percentile summary and the one host description."""
from __future__ import annotations

import time

import numpy as np
import pytest

from pilotnet_brains import hostinfo, timing


def test_measure_reaches_the_minimum_count_and_the_minimum_duration():
    calls = []
    t0 = time.perf_counter()
    ns = timing.measure(calls.append, [1, 2, 3], min_count=50, min_seconds=0.0, warmup_seconds=0.0)
    assert ns.dtype == np.int64 and len(ns) == 50 and (ns >= 0).all()
    # warm-up calls come first and are not timed; the inputs cycle
    assert len(calls) == 50 + timing.MIN_WARMUP_CALLS and calls[timing.MIN_WARMUP_CALLS:][:4] == [1, 2, 3, 1]
    ns = timing.measure(lambda x: time.sleep(0.001), [None], min_count=1, min_seconds=0.05, warmup_seconds=0.02)
    assert len(ns) > 1 and ns.sum() >= 0.04e9 and time.perf_counter() - t0 >= 0.07


def test_measure_alternating_pairs_the_calls():
    order = []
    a, b = timing.measure_alternating([lambda x: order.append(("a", x)), lambda x: order.append(("b", x))],
                                      [[1, 2], [10]], min_count=5, min_seconds=0.0, warmup_seconds=0.0)
    assert len(a) == len(b) == 5
    assert order[-4:] == [("a", 2), ("b", 10), ("a", 1), ("b", 10)]


def test_summary_states_its_unit():
    ns = np.array([1e6, 2e6, 3e6, 4e6])
    ms = timing.summary(ns, "ms")
    assert ms["unit"] == "ms" and ms["n"] == 4 and ms["min"] == 1.0 and ms["max"] == 4.0
    assert ms["p50"] == pytest.approx(2.5) and ms["mean"] == pytest.approx(2.5)
    assert ms["p50"] <= ms["p90"] <= ms["p99"] <= ms["max"]
    s = timing.summary(ns, "s")
    assert s["p50"] == pytest.approx(2.5e-3) and timing.summary(ns, "us")["max"] == pytest.approx(4000.0)
    assert timing.summary([], "ms") == {"unit": "ms", "n": 0}
    with pytest.raises(KeyError):
        timing.summary(ns, "minutes")


def test_host_description():
    env = hostinfo.describe(threads=2)
    assert env["cpu"] and env["threads"] == 2 and "numpy" in env["libraries"]
    assert env["cpu_count"] >= 1 and len(env["load_average"]) == 3
    assert set(env["isa"]) <= set(hostinfo.ISA_FLAGS)
    line = hostinfo.text(env)
    assert line.startswith(f"{env['cpu']} ({env['cpu_count']} cores)") and "numpy" in line
    assert "numpy" not in hostinfo.text(env, libraries=False)
    assert hostinfo.text(None) == "unknown (no run finished)"
    assert hostinfo.busy({"cpu_count": 2, "load_average": [2.5, 1, 1]})
    assert not hostinfo.busy({"cpu_count": 2, "load_average": [1.5, 1, 1]})


def test_isa_flags_read_from_cpuinfo(monkeypatch):
    monkeypatch.setattr(hostinfo, "_cpuinfo", lambda key: "fpu sse4_2 avx avx2 fma avx512f" if key == "flags" else "")
    assert hostinfo.isa_flags() == ["sse4_2", "avx", "avx2", "fma", "avx512f"]
