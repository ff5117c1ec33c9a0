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
    "openvino": (("openvino",), "openvino (Python >= 3.10: no wheel of the pinned 2026.x for Python 3.8)"),
    "pilotnet_native": (("numpy",), "nothing from pip: the package's C kernels, compiled with gcc at first use"),
}


@dataclass(frozen=True)
class BackendSpec:
    """One row of the backend table: every fact about a backend that the brain, the optimizer, the
    evaluator, the benchmarks and the tests use (they derive their lists from these fields).

    name: the backend/launch-arg name, also the name of the optimize method that builds it.
    runtime: key of :data:`RUNTIMES`. impl: ``module:Class`` under pilotnet_brains.backends.
    artifact_kind / suffix: what the artifact is ("" suffix = a folder).
    default: artifact path relative to the models folder (base models at the top, optimized ones
    under build/). devices: "cpu" and/or "gpu". method: optimize method that builds it ("train" for
    the base models). parent: the base model it derives from ("tf_keras" or "torch"; "" for a base).
    needs: data the method needs: "" (none), "calibration" (representative frames) or "training"
    (fine-tuning on the training set). tolerance: max |output - parent output| in normalized
    units (label range = 1) expected from the conversion alone (tested): fp32 1e-5, fp16 1e-3,
    int8 variants 0.05 (measured <= 0.035 on random-weight PilotNet), bf16 0.02 (stated from bf16's
    8-bit mantissa; tested only on an AMX-BF16 machine); None for fine-tuned methods,
    whose weights differ from the parent's.
    unsupported: () -> "" or the reason this machine cannot run it.
    quantized: reduced-precision weights or activations; the offline evaluation checks its MSE against
    its fp32 reference (``fp32_sibling`` if evaluated, else the parent base model).
    pruned: weights pruned before any quantization. qat: quantization-aware trained (fine-tuned
    weights, so they differ from the parent's).
    fp32_sibling: the fine-tuned fp32 artifact a quantized variant shares its fine-tuning with ("" none).
    size_reference: the fp32 artifact this one should be about 4x smaller than ("" no size target).
    camera_bound: the brain answers every camera frame in time, so its lap target is the share of
    frames answered; False (the keras base model): its target is 1/iteration time instead.
    benchmark: in the default backend list of ``scripts/benchmark_brain``.
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
    quantized: bool = False
    pruned: bool = False
    qat: bool = False
    fp32_sibling: str = ""
    size_reference: str = ""
    camera_bound: bool = True
    benchmark: bool = False

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


def _tflite(name: str, kind: str, **facts: Any) -> BackendSpec:
    return BackendSpec(name=name, runtime="litert", impl="litert:LiteRTBackend",
                       artifact_kind=f"TFLite flatbuffer ({kind})", suffix=".tflite", default=f"build/{name}.tflite",
                       method=name, parent="tf_keras", **facts)


def _torch(name: str, kind: str, **facts: Any) -> BackendSpec:
    return BackendSpec(name=name, runtime="torch", impl="torch_backend:TorchScriptBackend",
                       artifact_kind=f"TorchScript ({kind})", suffix=".pt", default=f"build/{name}.pt",
                       method=name, parent="torch", **facts)


def _onnx(name: str, kind: str, **facts: Any) -> BackendSpec:
    return BackendSpec(name=name, runtime="onnxruntime", impl="onnx_backend:OnnxBackend", artifact_kind=kind,
                       suffix=".onnx", default=f"build/{name}.onnx", devices=("cpu", "gpu"), method=name,
                       parent="torch", **facts)


def _openvino(name: str, kind: str, **facts: Any) -> BackendSpec:
    return BackendSpec(name=name, runtime="openvino", impl="openvino_backend:OpenVinoBackend",
                       artifact_kind=f"OpenVINO IR .xml + .bin ({kind})", suffix=".xml", default=f"build/{name}.xml",
                       method=name, parent="torch", **facts)


def _tftrt(name: str, precision: str) -> BackendSpec:
    return BackendSpec(name=name, runtime="tftrt", impl="tftrt:TFTRTBackend",
                       artifact_kind=f"TF-TRT SavedModel folder ({precision})", suffix="", default=f"build/{name}",
                       devices=("gpu",), method=name, parent="tf_keras",
                       needs="calibration" if precision == "INT8" else "",
                       tolerance=0.05 if precision == "INT8" else (1e-3 if precision == "FP16" else 1e-4),
                       unsupported=machine.tftrt_missing, quantized=precision != "FP32")


_SPECS: list[BackendSpec] = [
    BackendSpec(name="keras", runtime="tf_keras", impl="keras_backend:KerasBackend",
                artifact_kind="tf_keras model (.keras/.h5/SavedModel)", suffix=".keras", default=TF_BASE_NAME,
                devices=("cpu", "gpu"), method="train", tolerance=1e-5, camera_bound=False, benchmark=True),
    _tflite("tflite_fp32", "float32", tolerance=1e-5, benchmark=True),
    _tflite("tflite_dynamic", "dynamic-range int8 weights", tolerance=0.05, quantized=True,
            size_reference="tflite_fp32", benchmark=True),
    _tflite("tflite_fp16", "float16 weights", tolerance=1e-3, quantized=True),
    _tflite("tflite_int8", "full integer, integer I/O", needs="calibration", tolerance=0.05, quantized=True,
            size_reference="tflite_fp32", benchmark=True),
    _tflite("tflite_int8_fallback", "int8 with float fallback and float I/O", needs="calibration", tolerance=0.05,
            quantized=True, size_reference="tflite_fp32", benchmark=True),
    _tflite("tflite_pruned", "magnitude-pruned, stripped", needs="training", pruned=True),
    _tflite("tflite_pruned_dynamic", "pruned + dynamic-range", needs="training", quantized=True, pruned=True,
            fp32_sibling="tflite_pruned", size_reference="tflite_fp32"),
    _tflite("tflite_qat", "quantization-aware trained int8", needs="training", quantized=True, qat=True),
    _tflite("tflite_cqat", "cluster-preserving QAT", needs="training", quantized=True, qat=True),
    _tflite("tflite_pqat", "sparsity-preserving QAT", needs="training", quantized=True, pruned=True, qat=True),
    _tflite("tflite_pcqat", "pruning+clustering-preserving QAT", needs="training", quantized=True, pruned=True,
            qat=True),
    _tftrt("tftrt_fp32", "FP32"),
    _tftrt("tftrt_fp16", "FP16"),
    _tftrt("tftrt_int8", "INT8"),
    _torch("torchscript", "float32", tolerance=1e-5, benchmark=True),
    _torch("torch_dynamic", "dynamic int8 Linear", tolerance=0.05, quantized=True, size_reference="torchscript"),
    _torch("torch_static", "static int8, fused, fbgemm/x86", needs="calibration", tolerance=0.05, quantized=True,
           size_reference="torchscript", benchmark=True),
    _torch("torch_qat", "quantization-aware trained int8", needs="training", quantized=True, qat=True),
    _torch("torch_pruned_global", "global L1 pruning", needs="training", pruned=True),
    _torch("torch_pruned_local", "local L1 pruning", needs="training", pruned=True),
    _torch("torch_pruned_quant", "pruned + quantized", needs="training", quantized=True, pruned=True, qat=True),
    _onnx("onnx_fp32", "ONNX float32", tolerance=1e-5, benchmark=True),
    _onnx("onnx_int8", "ONNX static int8 (QDQ)", needs="calibration", tolerance=0.05, quantized=True,
          size_reference="onnx_fp32", benchmark=True),
    _openvino("openvino_fp32", "float32, from onnx_fp32", tolerance=1e-5, benchmark=True),
    _openvino("openvino_int8", "int8, from onnx_int8's calibrated QDQ model", needs="calibration", tolerance=0.05,
              quantized=True, size_reference="openvino_fp32", benchmark=True),
    _openvino("openvino_bf16", "float32 weights run in bfloat16 on AMX", tolerance=0.02, quantized=True,
              unsupported=machine.amx_bf16_missing),
    BackendSpec(name="native_int8", runtime="pilotnet_native", impl="native_backend:NativeBackend",
                artifact_kind="int8 weights for the package's AVX-512 VNNI kernels (.npz)", suffix=".npz",
                default="build/native_int8.npz", method="native_int8", parent="torch", needs="calibration",
                tolerance=0.05, unsupported=machine.native_missing, quantized=True, size_reference="onnx_fp32",
                benchmark=True),
    BackendSpec(name="tensorrt", runtime="tensorrt", impl="tensorrt_backend:TensorRTBackend",
                artifact_kind="TensorRT serialized engine (built from ONNX)", suffix=".engine",
                default="build/tensorrt.engine", devices=("gpu",), method="tensorrt", parent="torch",
                tolerance=1e-3, unsupported=machine.tensorrt_missing, quantized=True),
]

#: name -> BackendSpec: every backend of the package.
BACKENDS: dict[str, BackendSpec] = {s.name: s for s in _SPECS}


def post_training_cpu_methods() -> list[str]:
    """Backends an optimize method builds on a CPU without fine-tuning and this machine runs (table order)."""
    return [n for n, s in BACKENDS.items()
            if s.method == n and "cpu" in s.devices and s.needs != "training" and not s.missing()]


def quantized_backends() -> list[str]:
    """Backends whose MSE is checked against their fp32 reference (table order)."""
    return [n for n, s in BACKENDS.items() if s.quantized]


def benchmark_backends() -> list[str]:
    """The default backends of ``scripts/benchmark_brain`` (table order)."""
    return [n for n, s in BACKENDS.items() if s.benchmark]


def camera_bound(name: str) -> bool:
    """Is a brain running ``name`` judged by the share of camera frames it answers? Names that are
    not backends (the explicit brain) are."""
    spec = BACKENDS.get(name)
    return spec is None or spec.camera_bound


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


def model_overrides(items) -> dict[str, str]:
    """{backend: artifact path} from command-line ``NAME=PATH`` items (``--model``); a ValueError
    names an item without ``=``."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--model {item!r}: write NAME=PATH")
        name, path = item.split("=", 1)
        out[name] = path
    return out


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
