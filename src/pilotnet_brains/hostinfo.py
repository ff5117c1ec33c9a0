"""The host a measurement ran on: one description, the same in every report (run folders, campaign
reports, the offline table, the benchmarks).

:func:`describe` reads everything cheaply (no framework imports): the CPU model and the SIMD
extensions the inference runtimes dispatch on (int8 and fp32 speeds depend on them), cores, the
load average, Python, OS, ROS distro and the installed versions of the libraries that matter.
"""
from __future__ import annotations

import os
import platform
from typing import Any, Mapping, Sequence

#: Python distributions whose versions describe a run (those installed are listed).
LIBRARIES: Sequence[str] = (
    "numpy", "scipy", "opencv-python", "tensorflow", "tensorflow-cpu", "tf_keras", "torch", "onnxruntime", "openvino",
    "ai-edge-litert", "tflite-runtime", "tensorrt", "matplotlib", "rosbags")
#: /proc/cpuinfo flags reported in ``isa``: the vector extensions the runtimes' kernels choose from.
ISA_FLAGS: Sequence[str] = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "sve")


def _cpuinfo(key: str) -> str:
    """The first value of ``key`` in /proc/cpuinfo ("" when there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip().lower() == key:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    """The host CPU's model name (from /proc/cpuinfo on Linux, else platform)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def isa_flags() -> list[str]:
    """The :data:`ISA_FLAGS` this CPU has (x86 ``flags``, Arm ``Features``), in that order."""
    have = set((_cpuinfo("flags") or _cpuinfo("features")).split())
    return [f for f in ISA_FLAGS if f in have]


#: int8 multiply-adds per cycle per core of each matrix/vector extension (x86): AVX-512 VNNI's
#: vpdpbusd does 64 per 512-bit instruction, two FMA ports per core (Xeon); AVX-VNNI the same on
#: 256 bits; AMX-INT8's tile multiply 1024 (2048 int8 ops per cycle per core, Intel's figure).
INT8_MACS_PER_CYCLE: dict[str, int] = {"avx512_vnni": 2 * 64, "avx_vnni": 2 * 32, "amx_int8": 1024}


def cpu_mhz() -> tuple[float, str]:
    """(MHz, where from) of this CPU: cpufreq's cpuinfo_max_freq (the highest clock) when the kernel
    has it, else /proc/cpuinfo's ``cpu MHz`` (in a VM usually the nominal clock); (0, "") if neither."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read().strip()) / 1000.0, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    try:
        return float(_cpuinfo("cpu mhz")), "/proc/cpuinfo cpu MHz"
    except ValueError:
        return 0.0, ""


def int8_peak(threads: int = 1) -> dict[str, Any]:
    """The int8 multiply-add peak of ``threads`` cores of this CPU, derived (not measured) from the
    ISA flags detected at run time: cores x clock x :data:`INT8_MACS_PER_CYCLE`. ``vnni``: the best
    vector path (AVX-512 VNNI, else AVX-VNNI; None without either), ``amx``: AMX-INT8 (None
    without it), both in MAC/s; ``mhz`` and ``method`` say where the figures come from."""
    flags = set(isa_flags())
    mhz, source = cpu_mhz()
    cores = max(1, min(int(threads or 1), os.cpu_count() or 1))
    vnni = next((f for f in ("avx512_vnni", "avx_vnni") if f in flags), "")

    def peak(flag: str) -> float | None:
        return cores * mhz * 1e6 * INT8_MACS_PER_CYCLE[flag] if flag and mhz else None

    return {"cores": cores, "mhz": mhz, "vnni": peak(vnni), "vnni_flag": vnni or None,
            "amx": peak("amx_int8" if "amx_int8" in flags else ""),
            "method": (f"derived: {cores} core(s) x {mhz:.0f} MHz ({source}) x int8 MAC/cycle/core "
                       f"({', '.join(f'{k} {v}' for k, v in INT8_MACS_PER_CYCLE.items() if k in flags) or 'no VNNI/AMX'})")}


def library_versions(names: Sequence[str] = LIBRARIES) -> dict[str, str]:
    """Installed versions of the given distributions (missing ones left out); no heavy imports."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return {}
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except Exception:
            continue
    return out


def describe(threads: int | None = None) -> dict[str, Any]:
    """The host: cpu, isa, cpu_count, threads (the measurement's, as given), load_average (1, 5,
    15 min, now), python, platform, ros_distro, libraries."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu": cpu_model(),
        "isa": isa_flags(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "load_average": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ros_distro": os.environ.get("ROS_DISTRO", ""),
        "libraries": library_versions(),
    }


def busy(env: Mapping[str, Any]) -> bool:
    """Was the host's 1-minute load average above its core count (others' work in the tails)?"""
    load = env.get("load_average") or [0.0]
    return load[0] > (env.get("cpu_count") or 1)


def text(env: Mapping[str, Any] | None, libraries: bool = True) -> str:
    """One line for a report: CPU (cores), ISA, Python, OS, ROS distro, load average[; libraries]."""
    if not env:
        return "unknown (no run finished)"
    isa = " ".join(env.get("isa") or [])
    load = env.get("load_average") or []
    out = (f"{env.get('cpu')} ({env.get('cpu_count')} cores)" + (f", ISA {isa}" if isa else "")
           + f", Python {env.get('python')}, {env.get('platform')}, ROS {env.get('ros_distro') or '?'}"
           + (f", load average {load[0]:.2f} at the start" if load else ""))
    libs = env.get("libraries") or {}
    if libraries and libs:
        out += "; " + ", ".join(f"{k} {v}" for k, v in libs.items())
    return out
