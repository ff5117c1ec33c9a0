"""The backend table: every backend name, its runtime, artifact and builder (one source of truth).

Read by the brain (``load_backend``), the optimizer (``scripts/optimize``: ``method``, ``parent``,
``default_path``), the offline evaluator (``tolerance``, ``parent``) and the benchmark.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Callable

from pilotnet_brains.backends import machine
from pilotnet_brains.backends.base import (
    ArtifactCorrupt,
    ArtifactMissing,
    Backend,
    BackendError,
    RuntimeMissing,
    UnknownBackend,
    Unsupported,
)
from pilotnet_brains.models import TF_BASE_NAME, TORCH_BASE_NAME, models_dir

#: Runtimes: (python modules imported by the backend, pip package that provides them). "a|b": a, or
#: else b (tf_keras, else TensorFlow 2.13's own Keras 2; LiteRT, else tflite-runtime on Python 3.8).
RUNTIMES: dict[str, tuple[tuple[str, ...], str]] = {
    "tf_keras": (("tensorflow", "tf_keras|tensorflow.keras"), "tensorflow-cpu tf_keras"),
    "litert": (("ai_edge_litert.interpreter|tflite_runtime.interpreter",),
               "ai-edge-litert (Python >= 3.9) or tflite-runtime (Python 3.8)"),
    "torch": (("torch",), "torch"),
    "onnxruntime": (("onnxruntime",), "onnxruntime (or onnxruntime-gpu for CUDA/TensorRT providers)"),
    "tftrt": (("tensorflow",), "a GPU tensorflow <= 2.17 built with TensorRT"),
    "tensorrt": (("tensorrt",), "tensorrt (NVIDIA; needs an NVIDIA GPU)"),
}


@dataclass(frozen=True)
class BackendSpec:
    """One row of the backend table.

    name: the backend/launch-arg name, also the name of the optimize method that builds it.
    runtime: key of :data:`RUNTIMES`. impl: ``module:Class`` under pilotnet_brains.backends.
    artifact_kind / suffix: what the artifact is ("" suffix = a folder).
    default: artifact path relative to the models folder (base models at the top, optimized ones
    under build/). devices: "cpu" and/or "gpu". method: optimize method that builds it ("train" for
    the base models). parent: the base model it derives from ("tf_keras" or "torch"; "" for a base).
    needs: data the method needs: "" (none), "calibration" (representative frames) or "training"
    (fine-tuning on the training set). tolerance: max |output - parent output| in normalized
    units (label range = 1) expected from the conversion alone (tested): fp32 1e-5, fp16 1e-3,
    int8 variants 0.05 (measured <= 0.035 on random-weight PilotNet); None for fine-tuned methods,
    whose weights differ from the parent's.
    unsupported: () -> "" or the reason this machine cannot run it.
    """

    name: str
    runtime: str
    impl: str
    artifact_kind: str
    suffix: str
    default: str
    devices: tuple[str, ...] = ("cpu",)
    method: str = ""
    parent: str = ""
    needs: str = ""
    tolerance: float | None = None
    unsupported: Callable[[], str] | None = None

    @property
    def default_path(self) -> str:
        """Absolute default artifact path (follows ``PILOTNET_MODELS_DIR``)."""
        return os.path.join(models_dir(), self.default)

    @property
    def pip(self) -> str:
        return RUNTIMES[self.runtime][1]

    @property
    def modules(self) -> tuple[str, ...]:
        return RUNTIMES[self.runtime][0]

    def missing(self) -> str:
        """"" if this machine can run the backend, else why not (hardware/runtime build)."""
        return self.unsupported() if self.unsupported else ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "runtime": self.runtime, "artifact_kind": self.artifact_kind,
                "suffix": self.suffix, "default_path": self.default_path, "devices": list(self.devices),
                "method": self.method, "parent": self.parent, "needs": self.needs,
                "tolerance": self.tolerance, "pip": self.pip}


def _tflite(name: str, kind: str, needs: str = "", tol: float | None = None) -> BackendSpec:
    return BackendSpec(name, "litert", "litert:LiteRTBackend", f"TFLite flatbuffer ({kind})", ".tflite",
                       f"build/{name}.tflite", ("cpu",), name, "tf_keras", needs, tol)


def _torch(name: str, kind: str, needs: str = "", tol: float | None = None) -> BackendSpec:
    return BackendSpec(name, "torch", "torch_backend:TorchScriptBackend", f"TorchScript ({kind})", ".pt",
                       f"build/{name}.pt", ("cpu",), name, "torch", needs, tol)


def _tftrt(name: str, precision: str) -> BackendSpec:
    return BackendSpec(name, "tftrt", "tftrt:TFTRTBackend", f"TF-TRT SavedModel folder ({precision})", "",
                       f"build/{name}", ("gpu",), name, "tf_keras", "calibration" if precision == "INT8" else "",
                       0.05 if precision == "INT8" else (1e-3 if precision == "FP16" else 1e-4),
                       machine.tftrt_missing)


_SPECS: list[BackendSpec] = [
    BackendSpec("keras", "tf_keras", "keras_backend:KerasBackend", "tf_keras model (.keras/.h5/SavedModel)",
                ".keras", TF_BASE_NAME, ("cpu", "gpu"), "train", "", "", 1e-5),
    _tflite("tflite_fp32", "float32", tol=1e-5),
    _tflite("tflite_dynamic", "dynamic-range int8 weights", tol=0.05),
    _tflite("tflite_fp16", "float16 weights", tol=1e-3),
    _tflite("tflite_int8", "full integer, integer I/O", "calibration", 0.05),
    _tflite("tflite_int8_fallback", "int8 with float fallback and float I/O", "calibration", 0.05),
    _tflite("tflite_pruned", "magnitude-pruned, stripped", "training"),
    _tflite("tflite_pruned_dynamic", "pruned + dynamic-range", "training"),
    _tflite("tflite_qat", "quantization-aware trained int8", "training"),
    _tflite("tflite_cqat", "cluster-preserving QAT", "training"),
    _tflite("tflite_pqat", "sparsity-preserving QAT", "training"),
    _tflite("tflite_pcqat", "pruning+clustering-preserving QAT", "training"),
    _tftrt("tftrt_fp32", "FP32"),
    _tftrt("tftrt_fp16", "FP16"),
    _tftrt("tftrt_int8", "INT8"),
    _torch("torchscript", "float32", tol=1e-5),
    _torch("torch_dynamic", "dynamic int8 Linear", tol=0.05),
    _torch("torch_static", "static int8, fused, fbgemm/x86", "calibration", 0.05),
    _torch("torch_qat", "quantization-aware trained int8", "training"),
    _torch("torch_pruned_global", "global L1 pruning", "training"),
    _torch("torch_pruned_local", "local L1 pruning", "training"),
    _torch("torch_pruned_quant", "pruned + quantized", "training"),
    BackendSpec("onnx_fp32", "onnxruntime", "onnx_backend:OnnxBackend", "ONNX float32", ".onnx",
                "build/onnx_fp32.onnx", ("cpu", "gpu"), "onnx_fp32", "torch", "", 1e-5),
    BackendSpec("onnx_int8", "onnxruntime", "onnx_backend:OnnxBackend", "ONNX static int8 (QDQ)", ".onnx",
                "build/onnx_int8.onnx", ("cpu", "gpu"), "onnx_int8", "torch", "calibration", 0.05),
    BackendSpec("tensorrt", "tensorrt", "tensorrt_backend:TensorRTBackend",
                "TensorRT serialized engine (built from ONNX)", ".engine", "build/tensorrt.engine", ("gpu",),
                "tensorrt", "torch", "", 1e-3, machine.tensorrt_missing),
]

#: name -> BackendSpec: every backend of the package.
BACKENDS: dict[str, BackendSpec] = {s.name: s for s in _SPECS}

#: The base models (what the optimize methods start from), by framework.
BASE_MODELS: dict[str, str] = {"tf_keras": TF_BASE_NAME, "torch": TORCH_BASE_NAME}


def base_model_path(framework: str) -> str:
    return os.path.join(models_dir(), BASE_MODELS[framework])


def register_backend(spec: BackendSpec, replace: bool = False) -> BackendSpec:
    """Add a row to :data:`BACKENDS` (extensions, tests). Refuses to overwrite unless ``replace``."""
    if spec.name in BACKENDS and not replace:
        raise ValueError(f"backend {spec.name!r} is already registered")
    if spec.runtime not in RUNTIMES:
        raise ValueError(f"backend {spec.name!r}: unknown runtime {spec.runtime!r}; known: {sorted(RUNTIMES)}")
    BACKENDS[spec.name] = spec
    return spec


def get_spec(name: str) -> BackendSpec:
    """The table row for ``name``; an unknown name lists the valid ones."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r}; valid backends: {', '.join(BACKENDS)}") from None


def build_hint(spec: BackendSpec) -> str:
    if spec.method == "train":
        return ("train the base model (make models), or write a random-weight smoke model with "
                "`scripts/optimize --init-random-base`")
    return f"build it with `scripts/optimize {spec.method}` (or `make models` for all)"


def resolve_path(name: str, path: str | None = None) -> str:
    spec = get_spec(name)
    return os.path.abspath(path) if path else spec.default_path


def module_found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:       # the parent package of a dotted name is missing
        return False


def missing_module(spec: BackendSpec) -> str:
    """"" when the backend's runtime modules are installed, else the first missing one ("'a' or 'b'")."""
    for modules in spec.modules:
        if not any(module_found(m) for m in modules.split("|")):
            return " or ".join(repr(m) for m in modules.split("|"))
    return ""


def runtime_modules(spec: BackendSpec) -> list[str]:
    """The modules the backend imports here (the first installed of each alternative)."""
    return [next((m for m in alts.split("|") if module_found(m)), alts.split("|")[0]) for alts in spec.modules]


def _runtime_check(spec: BackendSpec) -> None:
    missing = missing_module(spec)
    if missing:
        raise RuntimeMissing(f"backend {spec.name!r} needs the Python module {missing}, which is not "
                             f"installed: pip install {spec.pip}")


def load_backend(name: str, path: str | None = None, threads: int = 1, **options: Any) -> Backend:
    """Load backend ``name`` with the artifact at ``path`` (default: the table's default path).

    threads: intra-op threads of the runtime (1 gave the steadiest latency on 2 cores).
    options: runtime-specific, e.g. ``providers=[...]`` for onnxruntime.
    Raises a :class:`BackendError` subclass whose message names the backend, the path and what to do:
    UnknownBackend, Unsupported (no GPU/TensorRT/TF-TRT), RuntimeMissing, ArtifactMissing, ArtifactCorrupt.
    """
    spec = get_spec(name)
    if int(threads) < 1:
        raise ValueError(f"backend {name!r}: threads must be >= 1 (got {threads}); 1 gave the steadiest "
                         f"latency on 2 cores")
    reason = spec.missing()
    if reason:
        raise Unsupported(f"backend {name!r} cannot run on this machine; missing: {reason}. "
                          f"Use a CPU backend instead (e.g. tflite_int8, onnx_int8, torch_static).")
    _runtime_check(spec)
    path = resolve_path(name, path)
    if not os.path.exists(path):
        raise ArtifactMissing(f"backend {name!r}: model file {path} does not exist; {build_hint(spec)}")
    if spec.suffix and spec.runtime != "tf_keras" and os.path.isdir(path):   # tf_keras also loads a SavedModel folder
        raise ArtifactCorrupt(f"backend {name!r}: model {path} is a folder; this backend loads a "
                              f"{spec.artifact_kind} file ({spec.suffix}). Pass that file with model:=")
    module_name, cls_name = spec.impl.split(":")
    cls = getattr(importlib.import_module(f"pilotnet_brains.backends.{module_name}"), cls_name)
    try:
        return cls(spec, path, threads, **options)
    except BackendError:
        raise
    except ImportError as e:
        raise RuntimeMissing(f"backend {name!r}: its runtime does not import ({e}); "
                             f"install it: pip install {spec.pip}") from e
    except Exception as e:
        raise ArtifactCorrupt(f"backend {name!r}: cannot load {path} as {spec.artifact_kind}: "
                              f"{type(e).__name__}: {str(e).strip()[:400]}. Rebuild it ({build_hint(spec)}) "
                              f"or pass the right backend for this file") from e
