"""The optimize methods and scripts/optimize: sidecars, sizes, bad inputs, refusals, atomicity."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from conftest import CPU_METHODS, method_params, needs_openvino, run_tool, runtime_installed

from pilotnet_brains.backends import BACKENDS
from pilotnet_brains.optimize import METHODS, MethodRefused, OptimizeError, build, is_up_to_date
from pilotnet_brains.optimize.calibration import CalibrationError, load_representative, synthetic_frames
from pilotnet_brains.preprocess import read_meta
from pilotnet_brains.util import path_size, sha256_path


def _leftovers(folder):
    return [f for f in os.listdir(folder) if "partial" in f or f.endswith(".tmp")]


def test_every_method_is_a_backend():
    assert set(METHODS) <= set(BACKENDS)
    assert set(CPU_METHODS) <= set(METHODS)
    for name, m in METHODS.items():
        assert m.spec is BACKENDS[name] and m.name == name


def test_method_modules_import_the_registry_not_the_package():
    """No import cycle: the package imports the method modules, they import optimize.registry."""
    import ast
    import glob

    import pilotnet_brains.optimize as package

    modules = glob.glob(os.path.join(os.path.dirname(package.__file__), "*.py"))
    assert len(modules) > 5
    for path in modules:
        if os.path.basename(path) != "__init__.py":
            with open(path) as f:
                tree = ast.parse(f.read())
            imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert "pilotnet_brains.optimize" not in imported, path


@pytest.mark.parametrize("name", method_params(CPU_METHODS))
def test_sidecar_records_method_parameters_and_parent(name, pilotnet_artifacts):
    path = pilotnet_artifacts["paths"][name]
    meta = read_meta(path)
    parent = pilotnet_artifacts["base"][BACKENDS[name].parent]
    assert meta.method == name
    assert meta.parent == sha256_path(parent)
    assert meta.extra["base"] == parent and "parameters" in meta.extra
    if BACKENDS[name].needs == "calibration":
        assert meta.extra["smoke"] is True and meta.extra["parameters"]["calibration_frames"] == 64
    assert not _leftovers(os.path.dirname(path))


@pytest.mark.torch
def test_int8_parameters_and_sizes(pilotnet_artifacts):
    p = pilotnet_artifacts["paths"]
    assert read_meta(p["tflite_int8"]).extra["parameters"]["io_type"] == "uint8"
    assert read_meta(p["torch_static"]).extra["quantized_engine"] == "x86"
    size = {k: path_size(v) for k, v in p.items()}
    for small, big in (("tflite_dynamic", "tflite_fp32"), ("tflite_int8", "tflite_fp32"),
                       ("tflite_int8_fallback", "tflite_fp32"), ("onnx_int8", "onnx_fp32"),
                       ("torch_static", "torchscript"), ("openvino_int8", "openvino_fp32")):
        if big.startswith("openvino") and not runtime_installed(big):
            continue
        assert size[big] / size[small] > 3.5, (small, size[small], big, size[big])
    assert 1.8 < size["tflite_fp32"] / size["tflite_fp16"] < 2.2


def test_int8_io_option(pilotnet_artifacts, tmp_path):
    from pilotnet_brains.backends import load_backend

    out = build("tflite_int8", base=pilotnet_artifacts["base"]["tf_keras"], data="synthetic:16",
                out=str(tmp_path / "i8.tflite"), progress=False, io_type="int8")
    b = load_backend("tflite_int8", path=out)
    assert b.describe()["input_dtype"] == "int8"
    ref = pilotnet_artifacts["ref"]["tf_keras"]
    assert np.abs(b.predict(pilotnet_artifacts["x"]) - ref).max() < BACKENDS["tflite_int8"].tolerance
    with pytest.raises(OptimizeError, match="io_type"):
        build("tflite_int8", base=pilotnet_artifacts["base"]["tf_keras"], data="synthetic:4",
              out=str(tmp_path / "bad.tflite"), progress=False, io_type="int4")
    assert not (tmp_path / "bad.tflite").exists() and not _leftovers(str(tmp_path))


def test_unknown_and_untrained_methods():
    with pytest.raises(OptimizeError) as e:
        build("tflite_int9")
    assert "tflite_int9" in str(e.value) and "tflite_int8" in str(e.value) and "onnx_int8" in str(e.value)


@pytest.mark.parametrize("name", ["tftrt_fp32", "tftrt_int8", "tensorrt"])
def test_gpu_methods_refused(name, tmp_path):
    with pytest.raises(MethodRefused) as e:
        build(name, out=str(tmp_path / "x"), data="synthetic")
    assert "NVIDIA GPU" in str(e.value) and name in str(e.value)
    assert not os.listdir(tmp_path)


def test_missing_base(tmp_path):
    with pytest.raises(OptimizeError) as e:
        build("tflite_fp32", base=str(tmp_path / "none.keras"), out=str(tmp_path / "o.tflite"))
    assert str(tmp_path / "none.keras") in str(e.value) and "--init-random-base" in str(e.value)
    assert not os.listdir(tmp_path)


@pytest.mark.torch
def test_calibration_sources(pilotnet_artifacts, tmp_path):
    base = pilotnet_artifacts["base"]["torch"]
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out" / "s.pt"
    with pytest.raises(CalibrationError, match="data.csv"):
        build("torch_static", base=base, data=str(empty), out=str(out))
    with pytest.raises(OptimizeError, match="--data"):
        build("torch_static", base=base, data=None, out=str(out))
    with pytest.raises(CalibrationError, match="does not exist"):
        build("onnx_int8", base=base, data=str(tmp_path / "nope"), out=str(out))
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 10, 10, 3), np.float32))
    with pytest.raises(CalibrationError, match="shape"):
        build("onnx_int8", base=base, data=str(bad), out=str(out))
    assert not out.exists() and (not out.parent.exists() or not os.listdir(out.parent))

    # a DeepLearningStudio run folder and a .npy both work
    from pilotnet_brains.dataset import RunWriter

    w = RunWriter(str(tmp_path / "dls" / "run1"))
    rng = np.random.default_rng(0)
    for i in range(5):
        w.add(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), 10.0, 0.5, i * 0.05)
    w.close()
    frames = load_representative(str(tmp_path / "dls"), n=3, progress=False)
    assert frames.shape == (3, 66, 200, 3) and frames.dtype == np.float32 and 0 <= frames.min() <= frames.max() <= 1
    good = tmp_path / "frames.npy"
    np.save(good, synthetic_frames(8, seed=1))
    assert load_representative(str(good), n=4).shape == (4, 66, 200, 3)
    path = build("torch_static", base=base, data=str(tmp_path / "dls"), out=str(out), progress=False)
    meta = read_meta(path)
    assert meta.extra["parameters"]["calibration_frames"] == 5 and "smoke" not in meta.extra


@pytest.mark.torch
@needs_openvino
def test_openvino_int8_converts_our_calibrated_qdq_model(pilotnet_artifacts):
    """openvino_int8's int8 scales are onnx_int8's (our calibration frames), and the IR keeps the
    fp32 weights uncompressed: the fp32 IR is as large as the fp32 ONNX export."""
    p = pilotnet_artifacts["paths"]
    params = read_meta(p["openvino_int8"]).extra["parameters"]
    onnx_params = read_meta(p["onnx_int8"]).extra["parameters"]
    assert params["converted_from"] == "onnx_int8 QDQ model"
    # the same calibration and quantization; conv1's precision is chosen per runtime
    same = [k for k in onnx_params if k not in ("float_conv1", "float_nodes")]
    assert {k: params[k] for k in same} == {k: onnx_params[k] for k in same}
    assert onnx_params["float_conv1"] is True and params["float_conv1"] is False
    assert len(params["rewrites"]) == 2 and params["float_nodes"] == onnx_params["float_nodes"][:-1]
    assert 0.95 < path_size(p["openvino_fp32"]) / os.path.getsize(p["onnx_fp32"]) < 1.05
    assert read_meta(p["openvino_fp32"]).framework == "openvino"


@pytest.mark.torch
@needs_openvino
def test_openvino_ir_built_and_rebuilt_as_one(pilotnet_artifacts, tmp_path):
    """build moves the .bin with the .xml, a rebuild replaces both, a failed build leaves neither."""
    out = tmp_path / "ov.xml"
    for _ in range(2):
        build("openvino_fp32", base=pilotnet_artifacts["base"]["torch"], out=str(out), progress=False)
        assert sorted(os.listdir(tmp_path)) == ["ov.bin", "ov.xml", "ov.xml.meta.json"]
    corrupt = tmp_path / "bad.pt"
    corrupt.write_bytes(b"not a state dict")
    with pytest.raises(OptimizeError):
        build("openvino_fp32", base=str(corrupt), out=str(tmp_path / "b" / "x.xml"))
    assert not os.listdir(tmp_path / "b")


@pytest.mark.torch
def test_failed_method_leaves_nothing(tmp_path):
    corrupt = tmp_path / "pilotnet_torch.pt"
    corrupt.write_bytes(b"not a state dict")
    out = tmp_path / "build" / "ts.pt"
    with pytest.raises(OptimizeError) as e:
        build("torchscript", base=str(corrupt), out=str(out))
    assert str(corrupt) in str(e.value)
    assert not out.exists() and not _leftovers(str(out.parent))


@pytest.mark.torch
def test_rebuild_replaces_atomically_and_up_to_date(pilotnet_artifacts, tmp_path):
    base = pilotnet_artifacts["base"]["torch"]
    out = str(tmp_path / "o.onnx")
    build("onnx_fp32", base=base, out=out, progress=False)
    assert is_up_to_date("onnx_fp32", base=base, out=out)
    first = read_meta(out).extra["built_at"]
    build("onnx_fp32", base=base, out=out, progress=False)
    assert read_meta(out).extra["built_at"] >= first and not _leftovers(str(tmp_path))
    assert not is_up_to_date("onnx_fp32", base=pilotnet_artifacts["base"]["tf_keras"], out=out)


@pytest.mark.torch
def test_an_artifact_built_before_the_method_gained_a_parameter_is_stale(pilotnet_artifacts, tmp_path):
    """The sidecar records the parameters the build was asked for; one the method has now and the
    build did not know (here ``rewrite``, as in an artifact built before the input rewrites) makes
    the artifact stale, so ``make artifact`` / ``make models`` rebuild it."""
    import json

    from pilotnet_brains.preprocess import sidecar_path

    base = pilotnet_artifacts["base"]["torch"]
    out = str(tmp_path / "o.onnx")
    build("onnx_fp32", base=base, out=out, progress=False)
    assert is_up_to_date("onnx_fp32", base=base, out=out)
    with open(sidecar_path(out)) as f:
        meta = json.load(f)
    assert meta["extra"]["requested"] == METHODS["onnx_fp32"].defaults
    del meta["extra"]["requested"]            # as an older build wrote it: only what the method returned
    meta["extra"]["parameters"] = {"opset": 17, "exporter": "torch.onnx.export(dynamo=False)"}
    with open(sidecar_path(out), "w") as f:
        json.dump(meta, f)
    assert not is_up_to_date("onnx_fp32", base=base, out=out)


def test_cli_list_and_errors(pilotnet_artifacts, tmp_path):
    env = dict(os.environ, PILOTNET_MODELS_DIR=str(tmp_path))
    out = run_tool("optimize", "--list", env=env).stdout
    for name in ("tflite_int8", "onnx_int8", "torch_static", "tftrt_int8", "tflite_qat"):
        assert name in out
    assert "cannot run here" in out
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:] if ln.strip()}
    assert set(lines) == set(BACKENDS)
    assert "cannot run here" in lines["tftrt_int8"] and "missing" in lines["tflite_int8"]
    bad = run_tool("optimize", "tflite_int9", env=env, check=False)
    assert bad.returncode != 0 and "valid methods" in bad.stderr and "tflite_int8" in bad.stderr
    missing = run_tool("optimize", "tflite_fp32", env=env, check=False)
    assert missing.returncode != 0 and "pilotnet_tf.keras does not exist" in missing.stderr


@pytest.mark.torch
def test_cli_all_is_idempotent(pilotnet_artifacts, tmp_path):
    """--all over a models folder whose artifacts are current rebuilds nothing and states every skip."""
    models = tmp_path / "models"
    shutil.copytree(pilotnet_artifacts["dir"], models)
    env = dict(os.environ, PILOTNET_MODELS_DIR=str(models))
    before = {f: os.path.getmtime(models / "build" / f) for f in os.listdir(models / "build")}
    # no --data: up-to-date artifacts need none; methods that would (fine-tuning) are skipped, saying why
    proc = run_tool("optimize", "--all", "--quiet", env=env)
    for name in CPU_METHODS:
        assert f"ok    {name}: up to date" in proc.stdout
    assert "skip  tftrt_int8: this machine cannot run it" in proc.stdout
    assert "skip  tensorrt: this machine cannot run it" in proc.stdout
    for name, spec in BACKENDS.items():
        if spec.needs == "training":
            assert f"skip  {name}: " in proc.stdout
    after = {f: os.path.getmtime(models / "build" / f) for f in os.listdir(models / "build")}
    assert before == after


@pytest.mark.torch
def test_cli_init_random_base_and_build(tmp_path):
    env = dict(os.environ, PILOTNET_MODELS_DIR=str(tmp_path))
    proc = run_tool("optimize", "--init-random-base", "onnx_fp32", "--quiet", env=env)
    assert "built onnx_fp32" in proc.stdout
    assert (tmp_path / "pilotnet_torch.pt").exists() and (tmp_path / "build" / "onnx_fp32.onnx").exists()
    again = run_tool("optimize", "--init-random-base", env=env, check=False)
    assert again.returncode != 0 and "--force" in again.stderr
