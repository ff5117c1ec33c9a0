"""OpenVINO IR conversions of the ONNX exports: the artifact is ``ctx.out`` (.xml) plus the .bin
next to it (:func:`pilotnet_brains.util.companions`; ``build`` moves both into place).

openvino_int8 converts our own calibrated QDQ model (the onnx_int8 method, same parameters), so
its int8 scales come from our calibration frames, not from a second quantizer's defaults.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

from pilotnet_brains.optimize.onnx_methods import export_onnx, onnx_int8
from pilotnet_brains.optimize.registry import METHODS, BuildContext, register_method


def save_ir(onnx_path: str, out: str) -> None:
    """ONNX -> OpenVINO IR at ``out`` (.xml + .bin), weights kept as they are (no fp16 compression)."""
    import openvino as ov

    ov.save_model(ov.convert_model(onnx_path), out, compress_to_fp16=False)


def _fp32_ir(ctx: BuildContext) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"{ctx.method}_") as tmp:
        onnx_path = os.path.join(tmp, "fp32.onnx")
        done = export_onnx(ctx.base, onnx_path, int(ctx.params["opset"]), bool(ctx.params["rewrite"]))
        save_ir(onnx_path, ctx.out)
    return {"opset": int(ctx.params["opset"]), "converted_from": "onnx_fp32 export", "compress_to_fp16": False,
            "rewrites": done}


@register_method("openvino_fp32", opset=17, rewrite=True)
def openvino_fp32(ctx: BuildContext) -> dict[str, Any]:
    """float32 IR of the ONNX float32 export."""
    return _fp32_ir(ctx)


@register_method("openvino_bf16", opset=17, rewrite=True)
def openvino_bf16(ctx: BuildContext) -> dict[str, Any]:
    """The float32 IR; the backend compiles it with INFERENCE_PRECISION_HINT bf16 (AMX-BF16 CPUs)."""
    return dict(_fp32_ir(ctx), inference_precision="bf16")


@register_method("openvino_int8", **dict(METHODS["onnx_int8"].defaults, float_conv1=False))
def openvino_int8(ctx: BuildContext) -> dict[str, Any]:
    """int8 IR of the onnx_int8 QDQ model (its Q/DQ pairs become FakeQuantize with our scales). conv1
    is int8 here (``float_conv1=False``): with the CPU plugin's int8 convolutions (AMX/VNNI) the two
    precisions of conv1 ran within a few per cent of each other (see docs/backends.md)."""
    with tempfile.TemporaryDirectory(prefix="openvino_int8_") as tmp:
        qdq = os.path.join(tmp, "int8.onnx")
        used = onnx_int8(dataclasses.replace(ctx, out=qdq))
        save_ir(qdq, ctx.out)
    return dict(used, converted_from="onnx_int8 QDQ model")
