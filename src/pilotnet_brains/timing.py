"""How every benchmark of the package times a call, and how it summarizes the times.

:func:`measure` warms up by time, then calls until a minimum count AND a minimum duration are both
reached, timing each call alone with ``perf_counter_ns`` on preloaded inputs; nothing is clipped.
:func:`summary` gives the percentiles of such times in one stated unit.
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable, Sequence

import numpy as np

#: Warm-up calls at least, however short the warm-up time.
MIN_WARMUP_CALLS = 3
#: Nanoseconds per unit of a summary.
UNIT_NS = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}


def measure_alternating(fns: Sequence[Callable[[Any], Any]], inputs: Sequence[Sequence[Any]], min_count: int,
                        min_seconds: float, warmup_seconds: float) -> list[np.ndarray]:
    """Call ``fns[0](inputs[0][i % n0])``, ``fns[1](inputs[1][i % n1])``, ... in turn (so all see the
    same machine load): a warm-up of ``warmup_seconds`` (and :data:`MIN_WARMUP_CALLS` rounds), then
    rounds until ``min_count`` rounds and ``min_seconds`` are both reached. Per-call times in ns, one
    int64 array per function, paired by index."""
    clock = time.perf_counter_ns
    work = [(fn, list(xs), len(xs)) for fn, xs in zip(fns, inputs)]
    end = clock() + int(warmup_seconds * 1e9)
    i = 0
    while clock() < end or i < MIN_WARMUP_CALLS:
        for fn, xs, n in work:
            fn(xs[i % n])
        i += 1
    times: list[list[int]] = [[] for _ in work]
    end = clock() + int(min_seconds * 1e9)
    i = 0
    while i < min_count or clock() < end:
        for (fn, xs, n), out in zip(work, times):
            x = xs[i % n]
            t0 = clock()
            fn(x)
            out.append(clock() - t0)
        i += 1
    return [np.asarray(t, np.int64) for t in times]


def measure(fn: Callable[[Any], Any], inputs: Sequence[Any], min_count: int, min_seconds: float,
            warmup_seconds: float) -> np.ndarray:
    """:func:`measure_alternating` of one function: its per-call times in ns."""
    return measure_alternating([fn], [inputs], min_count, min_seconds, warmup_seconds)[0]


def summary(ns: Sequence[float] | np.ndarray, unit: str) -> dict[str, Any]:
    """Percentiles of per-call times given in ns, converted to ``unit`` (s, ms, us or ns, recorded as
    ``unit``): n, p50, p90, p99, max, min, mean; only ``unit`` and n = 0 when there are none."""
    a = np.asarray(ns, np.float64) / UNIT_NS[unit]
    out: dict[str, Any] = {"unit": unit, "n": int(a.size)}
    if a.size:
        out.update(p50=float(np.percentile(a, 50)), p90=float(np.percentile(a, 90)),
                   p99=float(np.percentile(a, 99)), max=float(a.max()), min=float(a.min()),
                   mean=float(a.mean()))
    return out


def add_arguments(parser: argparse.ArgumentParser, min_count: int, min_seconds: float,
                  warmup_seconds: float) -> None:
    """The timing options of a benchmark's command line, with its defaults: --threads (the runtimes'
    intra-op threads), --min-count, --min-seconds, --warmup-seconds (alias --warmup)."""
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per runtime")
    parser.add_argument("--min-count", type=int, default=min_count, help="timed calls at least, per measurement")
    parser.add_argument("--min-seconds", type=float, default=min_seconds,
                        help="timed wall seconds at least, per measurement")
    parser.add_argument("--warmup-seconds", "--warmup", type=float, default=warmup_seconds,
                        help="warm-up wall seconds, per measurement")
