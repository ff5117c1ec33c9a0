"""ONNX exports of the torch base model and their static int8 (QDQ) quantization with ONNX Runtime.

Static QDQ rather than ``quantize_dynamic``: the dynamic default also quantizes convolutions into
ConvInteger, which ran 4.5x slower than fp32 on this CPU.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from pilotnet_brains.models import INPUT_SHAPE
from pilotnet_brains.optimize.registry import BuildContext, register_method

INPUT_NAME = "image"
OUTPUT_NAME = "outputs"


def export_onnx(base: str, out: str, opset: int = 17) -> None:
    """torch base state dict -> ONNX (NHWC input named ``image``, dynamic batch)."""
    import torch

    from pilotnet_brains.models.torch_pilotnet import load

    model = load(base)
    example = torch.zeros((1,) + INPUT_SHAPE)
    with torch.inference_mode():
        torch.onnx.export(model, (example,), out, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=opset, dynamo=False)


@register_method("onnx_fp32", opset=17)
def onnx_fp32(ctx: BuildContext) -> dict[str, Any]:
    """ONNX float32 (torch.onnx.export, TorchScript-based exporter)."""
    export_onnx(ctx.base, ctx.out, int(ctx.params["opset"]))
    return {"opset": int(ctx.params["opset"]), "exporter": "torch.onnx.export(dynamo=False)"}


def _nodes_before_first_conv(path: str) -> list:
    import onnx

    names = []
    for node in onnx.load(path).graph.node:
        if node.op_type == "Conv":
            break
        names.append(node.name)
    return names


class _Reader:
    """onnxruntime.quantization CalibrationDataReader over preprocessed frames (batch 1)."""

    def __init__(self, frames):
        self.frames = frames
        self.i = 0

    def get_next(self):
        if self.i >= len(self.frames):
            return None
        self.i += 1
        return {INPUT_NAME: self.frames[self.i - 1:self.i]}

    def rewind(self):
        self.i = 0


@register_method("onnx_int8", opset=17, calibration_frames=100, per_channel=True, calibrate_method="MinMax")
def onnx_int8(ctx: BuildContext) -> dict[str, Any]:
    """Static int8 QDQ (uint8 activations, int8 per-channel weights) calibrated on representative frames."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    frames = ctx.calibration()
    method = getattr(CalibrationMethod, str(ctx.params["calibrate_method"]))
    per_channel = bool(ctx.params["per_channel"])
    with tempfile.TemporaryDirectory(prefix="onnx_int8_") as tmp:
        fp32 = os.path.join(tmp, "fp32.onnx")
        prepped = os.path.join(tmp, "prepped.onnx")
        export_onnx(ctx.base, fp32, int(ctx.params["opset"]))
        quant_pre_process(fp32, prepped, skip_symbolic_shape=True)
        # the input Transpose + BatchNorm stay float (quantizing them only adds Q/DQ pairs)
        excluded = _nodes_before_first_conv(prepped)
        quantize_static(prepped, ctx.out, _Reader(frames), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=per_channel, calibrate_method=method, nodes_to_exclude=excluded)
    return {"format": "QDQ", "activations": "QUInt8", "weights": "QInt8", "per_channel": per_channel,
            "calibrate_method": str(ctx.params["calibrate_method"]), "calibration_frames": len(frames),
            "opset": int(ctx.params["opset"]), "float_nodes": excluded}
