"""scripts/profile_layers on real ONNX Runtime, OpenVINO and native_int8 artifacts (random weights): every PilotNet
layer found in the runtime's own profile, with its multiply-adds; a runtime without a profiler is an
error that says which ones have one."""
from __future__ import annotations

import glob
import json
import os

import pytest
from conftest import method_params

from pilotnet_brains.backends import BACKENDS, load_backend
from pilotnet_brains.backends.base import Unsupported
from pilotnet_brains.cli import profile_layers
from pilotnet_brains.models import layer_macs

LAYERS = sorted(name for name, _ in layer_macs())


@pytest.mark.parametrize("name", method_params(["onnx_int8", "onnx_fp32", "openvino_int8", "native_int8"]))
def test_every_layer_is_found_in_the_runtimes_profile(pilotnet_artifacts, tmp_path, name, capsys):
    if name not in pilotnet_artifacts["paths"]:
        pytest.skip(f"{name} cannot run here: {BACKENDS[name].missing()}")
    path = pilotnet_artifacts["paths"][name]
    rc = profile_layers.main([name, "--model", f"{name}={path}", "--count", "30", "--warmup", "5",
                              "--out", str(tmp_path)])
    assert rc == 0
    (js,) = glob.glob(os.path.join(tmp_path, "layers_*.json"))
    (row,) = json.load(open(js))["rows"]
    assert row["layers_found"] == LAYERS, [(n["node"], n["kind"]) for n in row["nodes"]]
    for node in row["nodes"]:
        assert len(node["us"]) == 30 and node["p50_us"] >= 0, node["node"]
    assert sum(n["macs"] for n in row["nodes"] if "macs" in n) == sum(m for _, m in layer_macs())
    assert row["call"]["n"] >= 30 and row["profiled_call"]["n"] == 30
    assert row["nodes_sum_us"] == pytest.approx(sum(n["p50_us"] for n in row["nodes"]))
    out = capsys.readouterr().out
    assert f"## {name}" in out and "GMAC/s" in out and "Nodes' p50s add up to" in out
    # loaded without profile=True (as the brain loads it) it has none, and says how to get them
    plain = load_backend(name, path)
    with pytest.raises(Unsupported, match="profile=True"):
        plain.layer_times()


def test_a_backend_without_a_profiler_says_which_have_one(pilotnet_artifacts, tmp_path, capsys):
    path = pilotnet_artifacts["paths"]["tflite_int8"]
    be = load_backend("tflite_int8", path)
    with pytest.raises(Unsupported, match="ONNX Runtime, OpenVINO and native_int8"):
        be.layer_times()
    rc = profile_layers.main(["tflite_int8", "--model", f"tflite_int8={path}", "--count", "3", "--warmup", "0",
                              "--out", str(tmp_path)])
    assert rc == 1
    assert "no per-layer times" in capsys.readouterr().err


def test_layer_names_map_only_compute_nodes():
    assert profile_layers.layer_of("/conv1/Conv_output_0_nchwc", "Conv") == "conv1"
    assert profile_layers.layer_of("/fc1/Gemm/WithoutBiases/DequantizationMultiply",
                                   "FullyConnectedQuantizedLegacy (brgemm_avx512_amx_I8)") == "fc1"
    assert profile_layers.layer_of("/outputs/Gemm", "QGemm") == "outputs"
    assert profile_layers.layer_of("fused /fc2/Gemm", "FusedGemm") == "fc2"
    assert profile_layers.layer_of("/relu_conv3/Relu_output_0_nchwc", "Conv") == "conv3"
    assert profile_layers.layer_of("/conv3/Conv", "Convolution (brgconv_avx512_amx_I8)") == "conv3"
    assert profile_layers.layer_of("/relu_conv1/Relu_output_0_QuantizeLinear", "QuantizeLinear") is None
    assert profile_layers.layer_of("/conv1/Conv/WithoutBiases", "Convert") is None
