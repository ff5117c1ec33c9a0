"""Backend registry: lazy imports, clear refusals, and every CPU backend against its reference."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import CPU_METHODS, method_params, needs_openvino

from pilotnet_brains.backends import (
    BACKENDS,
    ArtifactCorrupt,
    ArtifactMissing,
    BackendSpec,
    RuntimeMissing,
    UnknownBackend,
    Unsupported,
    load_backend,
    register_backend,
)
from pilotnet_brains.util import companions, path_size

EXPECTED_NAMES = {
    "keras", "tflite_fp32", "tflite_dynamic", "tflite_fp16", "tflite_int8", "tflite_int8_fallback",
    "tflite_pruned", "tflite_pruned_dynamic", "tflite_qat", "tflite_cqat", "tflite_pqat", "tflite_pcqat",
    "tftrt_fp32", "tftrt_fp16", "tftrt_int8", "torchscript", "torch_dynamic", "torch_static", "torch_qat",
    "torch_pruned_global", "torch_pruned_local", "torch_pruned_quant", "onnx_fp32", "onnx_int8", "openvino_fp32",
    "openvino_int8", "openvino_bf16", "native_int8", "tensorrt"}


def test_table_names_every_backend(monkeypatch, tmp_path):
    assert set(BACKENDS) == EXPECTED_NAMES
    monkeypatch.setenv("PILOTNET_MODELS_DIR", str(tmp_path))
    for name, spec in BACKENDS.items():
        assert spec.name == name
        assert spec.default_path == str(tmp_path / spec.default)     # follows PILOTNET_MODELS_DIR
        if spec.method == "train":
            assert "build" not in spec.default
        else:
            assert spec.default == f"build/{name}{spec.suffix}"
        assert spec.devices and set(spec.devices) <= {"cpu", "gpu"}
        assert spec.parent in ("", "tf_keras", "torch")


def test_a_backend_added_to_the_table_is_in_every_derived_list(monkeypatch):
    """One row is all a new backend needs: the optimizer, the offline targets, the campaign targets,
    the default benchmark list and the tests' CPU methods all follow from it."""
    from pilotnet_brains import campaign as cp
    from pilotnet_brains.backends import registry
    from pilotnet_brains.cli import benchmark_brain
    from pilotnet_brains.cli.optimize import list_methods
    from pilotnet_brains.evaluate import check_targets
    from pilotnet_brains.optimize import METHODS, get_method, method_names, register_method

    name = "tflite_extra"
    spec = BackendSpec(name=name, runtime="litert", impl="litert:LiteRTBackend", artifact_kind="TFLite (test)",
                       suffix=".tflite", default=f"build/{name}.tflite", method=name, parent="tf_keras",
                       needs="calibration", tolerance=0.05, quantized=True, pruned=True,
                       size_reference="tflite_fp32", camera_bound=False, benchmark=True)
    assert name not in BACKENDS and name not in METHODS
    monkeypatch.setitem(BACKENDS, name, spec)      # undone at teardown: the key was absent
    monkeypatch.setitem(METHODS, name, None)       # the same for what register_method puts there
    register_method(name, calibration_frames=10)(lambda ctx: {})

    assert name in registry.post_training_cpu_methods() and name in registry.quantized_backends()
    assert name in registry.benchmark_backends()
    # conftest's CPU_METHODS and benchmark_brain's default list are these helpers' lists at import time
    assert CPU_METHODS + (name,) == tuple(registry.post_training_cpu_methods())
    assert benchmark_brain.DEFAULT_BACKENDS == [n for n in registry.benchmark_backends() if n != name] + ["explicit"]

    method = get_method(name)
    assert method.spec is spec and (method.parent, method.needs, method.defaults) == (
        "tf_keras", "calibration", {"calibration_frames": 10})
    assert method_names()[-1] == name                             # the table's order: the new row is last
    (line,) = [ln for ln in list_methods().splitlines() if ln.startswith(name + " ")]
    assert line.split()[1:4] == ["tf_keras", "calibration", "missing"]

    rows = [{"method": n, "accuracy": {"overall": {"mse": mse}}, "size_bytes": size, "parent": {"mse": 0.1},
             "sparsity": 0.5} for n, mse, size in (("tflite_fp32", 0.1, 4000), (name, 0.2, 1000))]
    check_targets(rows)
    fp32, extra = rows
    assert fp32["target"] == "" and "size_ratio_vs_fp32" not in fp32
    assert extra["size_ratio_vs_fp32"] == 4.0
    assert extra["target"].startswith("MISS: MSE +100.0%") and "pruned weights" in extra["target"]

    lap = {"lap": 1, "completed": True, "dnf_reason": "", "lap_time": 50.0, "distance": 463.0, "percentage": 100.0,
           "average_speed": 9.0, "deviation_mae": 0.1, "deviation_max": 0.4, "brain_frequency_wall": 20.0,
           "brain_frequency_sim": 20.0, "brain_frequency_bm": 300.0, "camera_fps_sim": 20.0,
           "inference_time_mean": 0.002, "inference_time_p99": 0.004, "real_time_factor": 1.0, "skipped_frames": 0}
    runs = [{"circuit": "c", "method": n, "brain": "pilotnet", "backend": n, "model": "", "laps": [lap]}
            for n in (name, "tflite_int8")]
    campaign = cp.parse_campaign({"circuits": ["simple_circuit"]}, source="test.yaml")
    items = {t["method"]: {i["what"] for i in t["items"]} for t in cp.targets(cp.summarize(runs), campaign)}
    assert "brain frequency, 1/iteration time (it/s)" in items[name]
    assert "camera-bound: frames answered" in items["tflite_int8"]
    assert not any("camera-bound" in what for what in items[name])


def test_import_is_lazy():
    code = ("import sys, pilotnet_brains.backends as b; b.BACKENDS['tflite_int8'].default_path; "
            "print(sorted(m for m in ('tensorflow', 'torch', 'tf_keras', 'onnxruntime', 'ai_edge_litert') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UnknownBackend) as e:
        load_backend("tflite_int9")
    msg = str(e.value)
    assert "tflite_int9" in msg and "tflite_int8" in msg and "onnx_int8" in msg and "torch_static" in msg


@pytest.mark.parametrize("name", ["tftrt_fp32", "tftrt_fp16", "tftrt_int8"])
def test_tftrt_refused(name, tmp_path):
    # refused at once, even with an existing artifact path
    with pytest.raises(Unsupported) as e:
        load_backend(name, path=str(tmp_path))
    msg = str(e.value)
    assert name in msg and "TensorRT" in msg and "NVIDIA GPU" in msg
    assert "2.18" in msg or "GPU TensorFlow build" in msg   # TF >= 2.18 has no TF-TRT at all


def test_tensorrt_refused():
    with pytest.raises(Unsupported) as e:
        load_backend("tensorrt")
    msg = str(e.value)
    assert "tensorrt" in msg and "pip install tensorrt" in msg and "NVIDIA GPU" in msg


def test_missing_file_names_path_and_command(tmp_path):
    p = tmp_path / "nope.tflite"
    with pytest.raises(ArtifactMissing) as e:
        load_backend("tflite_int8", path=str(p))
    assert str(p) in str(e.value) and "scripts/optimize tflite_int8" in str(e.value)
    with pytest.raises(ArtifactMissing) as e:
        load_backend("keras", path=str(tmp_path / "m.keras"))
    assert "make models" in str(e.value)


@pytest.mark.parametrize("name,suffix", [("tflite_fp32", ".tflite"), pytest.param("torchscript", ".pt", marks=pytest.mark.torch),
                                         ("onnx_fp32", ".onnx"), ("keras", ".keras")])
def test_corrupt_file(name, suffix, tmp_path):
    p = tmp_path / f"garbage{suffix}"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ArtifactCorrupt) as e:
        load_backend(name, path=str(p))
    assert name in str(e.value) and str(p) in str(e.value)


@pytest.mark.torch   # the IR is converted from the torch model's ONNX export
@needs_openvino
@pytest.mark.parametrize("name", ["openvino_fp32", "openvino_int8"])
def test_openvino_single_frames_through_the_held_input_match_the_batch(pilotnet_artifacts, name):
    """A single frame goes through an input tensor the backend holds: each call must see its own
    frame (a stale input would repeat the previous answer) and answer as the batch path does."""
    be = load_backend(name, path=pilotnet_artifacts["paths"][name])
    x = pilotnet_artifacts["x"]
    batch = be.predict(x).copy()
    singles = np.concatenate([be.predict(x[i:i + 1]).copy() for i in range(len(x))])
    assert len({tuple(np.round(r, 5)) for r in singles}) == len(x), "a frame was answered with another's output"
    np.testing.assert_allclose(singles, batch, atol=1e-4)
    assert be.predict(x[3]).shape == (1, 2)       # one HWC frame is a batch of one too
    np.testing.assert_allclose(be.predict(x[3]), singles[3:4], atol=1e-6)


@pytest.mark.torch   # the IR is converted from the torch model's ONNX export
@needs_openvino
def test_openvino_ir_needs_its_weights(pilotnet_artifacts, tmp_path):
    """An OpenVINO IR is two files: its size counts both, a missing .bin is ArtifactMissing and a
    corrupt .xml or .bin ArtifactCorrupt, each naming the file."""
    import shutil

    xml = tmp_path / "m.xml"
    shutil.copy(pilotnet_artifacts["paths"]["openvino_fp32"], xml)
    (weights,) = companions(str(xml))
    assert weights == str(tmp_path / "m.bin")
    with pytest.raises(ArtifactMissing) as e:
        load_backend("openvino_fp32", path=str(xml))
    assert weights in str(e.value) and "scripts/optimize openvino_fp32" in str(e.value)
    shutil.copy(companions(pilotnet_artifacts["paths"]["openvino_fp32"])[0], weights)
    assert path_size(str(xml)) == os.path.getsize(xml) + os.path.getsize(weights) > 4 * os.path.getsize(xml)
    assert load_backend("openvino_fp32", path=str(xml)).predict(pilotnet_artifacts["x"][:1]).shape == (1, 2)
    with open(weights, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ArtifactCorrupt) as e:
        load_backend("openvino_fp32", path=str(xml))
    assert "openvino_fp32" in str(e.value) and str(xml) in str(e.value)
    xml.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ArtifactCorrupt) as e:
        load_backend("openvino_fp32", path=str(xml))
    assert "openvino_fp32" in str(e.value) and str(xml) in str(e.value)


def test_bf16_needs_amx(monkeypatch, tmp_path):
    """openvino_bf16 runs only where the CPU has AMX-BF16; elsewhere it is refused naming the flag, and
    the tests' CPU methods leave it out."""
    from pilotnet_brains import hostinfo
    from pilotnet_brains.backends import registry

    monkeypatch.setattr(hostinfo, "isa_flags", lambda: ["avx2", "fma"])
    with pytest.raises(Unsupported) as e:
        load_backend("openvino_bf16", path=str(tmp_path))
    assert "openvino_bf16" in str(e.value) and "amx_bf16" in str(e.value)
    assert "openvino_bf16" not in registry.post_training_cpu_methods()
    monkeypatch.setattr(hostinfo, "isa_flags", lambda: ["avx512f", "amx_tile", "amx_bf16"])
    assert BACKENDS["openvino_bf16"].missing() == ""
    assert "openvino_bf16" in registry.post_training_cpu_methods()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_missing_runtime_names_pip_package(tmp_path):
    # a backend row whose runtime really is absent here (the tensorrt package), without the GPU check
    spec = register_backend(BackendSpec("test_absent_runtime", "tensorrt", "tensorrt_backend:TensorRTBackend",
                                        "engine", ".engine", "build/x.engine"))
    try:
        p = tmp_path / "x.engine"
        p.write_bytes(b"0")
        with pytest.raises(RuntimeMissing) as e:
            load_backend(spec.name, path=str(p))
        assert "'tensorrt'" in str(e.value) and "pip install tensorrt" in str(e.value)
    finally:
        del BACKENDS[spec.name]


def test_threads_validated():
    with pytest.raises(ValueError, match="threads"):
        load_backend("tflite_int8", threads=0)


def test_register_refuses_duplicates_and_unknown_runtime():
    with pytest.raises(ValueError, match="already registered"):
        register_backend(BACKENDS["onnx_fp32"])
    with pytest.raises(ValueError, match="unknown runtime"):
        register_backend(BackendSpec("x", "nope", "a:b", "k", ".x", "build/x"))


@pytest.mark.torch   # onnx_fp32 is exported from the torch model
def test_onnx_unknown_provider_refused(pilotnet_artifacts):
    with pytest.raises(Unsupported, match="CUDAExecutionProvider"):
        load_backend("onnx_fp32", path=pilotnet_artifacts["paths"]["onnx_fp32"],
                     providers=["CUDAExecutionProvider"])


@pytest.mark.parametrize("name", method_params(("keras",) + CPU_METHODS))
def test_backend_matches_reference(name, pilotnet_artifacts):
    """Outputs within the method's stated tolerance of the base model, batch 1 and batch N, and always
    dequantized floats inside the reference's range (a raw uint8 output would be ~0..255)."""
    spec = BACKENDS[name]
    art = pilotnet_artifacts
    x = art["x"]
    ref = art["ref"][spec.parent or "tf_keras"]
    b = load_backend(name, path=art["paths"][name], threads=1)
    b.warmup(2)
    y1 = np.concatenate([b.predict(x[i:i + 1]).copy() for i in range(len(x))])
    yn = b.predict(x).copy()
    for y in (y1, yn):
        assert y.dtype == np.float32 and y.shape == (len(x), 2)
        assert np.all(np.isfinite(y))
        tol = max(spec.tolerance, 1e-5)
        err = np.abs(y - ref).max()
        assert err <= tol, f"{name}: max |error| {err:.2e} > tolerance {tol:.0e}"
        assert np.all(y >= ref.min(axis=0) - tol) and np.all(y <= ref.max(axis=0) + tol)
    # the model really reacts to its input (so the comparison above means something)
    assert np.ptp(ref, axis=0).min() > 0.05
    d = b.describe()
    assert d["backend"] == name and d["threads"] == 1 and d["path"] == os.path.abspath(art["paths"][name])
    assert d["size_bytes"] == path_size(art["paths"][name]) and d["runtime_version"]


def test_int8_has_integer_io(pilotnet_artifacts):
    b = load_backend("tflite_int8", path=pilotnet_artifacts["paths"]["tflite_int8"])
    d = b.describe()
    assert d["input_dtype"] == "uint8" and d["output_dtype"] == "uint8"
    scale, zero = d["output_quantization"]
    assert scale > 0
    assert d["input_quantization"] == pytest.approx((1 / 255, 0), rel=1e-3, abs=1e-6)


def test_default_path_follows_models_dir(pilotnet_artifacts, monkeypatch):
    monkeypatch.setenv("PILOTNET_MODELS_DIR", pilotnet_artifacts["dir"])
    b = load_backend("keras")
    assert b.path == os.path.join(pilotnet_artifacts["dir"], "pilotnet_tf.keras")


def test_litert_backends_fall_back_to_tflite_runtime(pilotnet_artifacts):
    """Where LiteRT (ai_edge_litert, Python >= 3.9) is not installed, tflite_runtime runs the same
    artifacts (make test-py38 has only tflite-runtime): the int8 artifact still matches its parent."""
    from pilotnet_brains.backends.registry import module_found

    b = load_backend("tflite_int8", path=pilotnet_artifacts["paths"]["tflite_int8"])
    assert b.runtime == ("litert" if module_found("ai_edge_litert") else "tflite_runtime")
    diff = np.abs(b.predict(pilotnet_artifacts["x"]) - pilotnet_artifacts["ref"]["tf_keras"]).max()
    assert diff < BACKENDS["tflite_int8"].tolerance
