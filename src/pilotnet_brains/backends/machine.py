"""What this machine can run: NVIDIA GPU, TensorRT, TF-TRT, AMX-BF16. Cheap checks, no framework imports.

Each ``*_missing()`` returns "" when the requirement is met, else a sentence naming what is missing.
"""
from __future__ import annotations

import ctypes.util
import glob
import importlib.util
import os

try:
    from importlib import metadata as _metadata
except ImportError:  # pragma: no cover - Python < 3.8
    _metadata = None

#: TensorFlow stopped shipping TF-TRT (TensorRT support) with 2.18.
TFTRT_LAST_TF = (2, 17)
_TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-gpu", "tensorflow-cpu", "tf-nightly", "intel-tensorflow")


def nvidia_gpu() -> bool:
    """An NVIDIA GPU with its kernel driver (``/dev/nvidia0`` or /proc/driver/nvidia/gpus/*)."""
    return os.path.exists("/dev/nvidia0") or bool(glob.glob("/proc/driver/nvidia/gpus/*"))


def installed_tensorflow() -> tuple[str, str] | None:
    """(distribution, version) of the installed TensorFlow wheel, or None."""
    if _metadata is None:
        return None
    for dist in _TF_DISTRIBUTIONS:
        try:
            return dist, _metadata.version(dist)
        except _metadata.PackageNotFoundError:
            continue
    return None


def _version_tuple(v: str) -> tuple[int, int]:
    parts = []
    for p in v.split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts + [0] * (2 - len(parts)))  # type: ignore[return-value]


def tensorrt_libs() -> bool:
    """TensorRT present: the ``tensorrt`` Python package or libnvinfer on the loader path."""
    return importlib.util.find_spec("tensorrt") is not None or ctypes.util.find_library("nvinfer") is not None


def tensorrt_missing() -> str:
    """Native TensorRT engines need the ``tensorrt`` Python package and an NVIDIA GPU."""
    missing: list[str] = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append("the TensorRT Python package (pip install tensorrt; NVIDIA's CUDA wheels)")
    if not nvidia_gpu():
        missing.append("an NVIDIA GPU with its driver (no /dev/nvidia0 on this machine)")
    return "; ".join(missing)


def tftrt_missing() -> str:
    """TF-TRT needs a GPU TensorFlow <= 2.17 built with TensorRT, the TensorRT libraries and a GPU."""
    missing: list[str] = []
    tf = installed_tensorflow()
    if tf is None:
        missing.append("TensorFlow (a GPU build <= 2.17, e.g. pip install 'tensorflow[and-cuda]==2.17.*')")
    else:
        dist, version = tf
        if _version_tuple(version) > TFTRT_LAST_TF:
            missing.append(f"a TensorFlow with TF-TRT: the installed {dist} {version} has none (TensorFlow "
                           f">= 2.18 dropped TensorRT; use a GPU build <= 2.17 such as "
                           f"'tensorflow[and-cuda]==2.17.*' in its own environment)")
        elif dist == "tensorflow-cpu":
            missing.append(f"a GPU TensorFlow build (installed: {dist} {version}, CPU only)")
    if not tensorrt_libs():
        missing.append("the TensorRT libraries (libnvinfer; pip install tensorrt)")
    if not nvidia_gpu():
        missing.append("an NVIDIA GPU with its driver (no /dev/nvidia0 on this machine)")
    return "; ".join(missing)



def amx_bf16_missing() -> str:
    """The bfloat16 backend (OpenVINO's bf16 precision hint) is offered only on AMX-BF16 CPUs, the
    ones with bf16 matrix units."""
    from pilotnet_brains.hostinfo import cpu_model, isa_flags

    if "amx_bf16" in isa_flags():
        return ""
    return (f"a CPU with AMX-BF16 (the amx_bf16 flag, e.g. Intel Xeon 4th generation and later); this "
            f"{cpu_model()} has none")


def native_missing() -> str:
    """The package's own int8 kernels need AVX-512 VNNI and a C compiler (built at first use)."""
    from pilotnet_brains import native

    return native.missing()
