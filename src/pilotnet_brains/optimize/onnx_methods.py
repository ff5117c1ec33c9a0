"""ONNX exports of the torch base model and their static int8 (QDQ) quantization with ONNX Runtime.

Static QDQ rather than ``quantize_dynamic``: the dynamic default also quantizes convolutions into
ConvInteger, which ran 4.5x slower than fp32 on this CPU.

The export is rewritten at its input (:func:`rewrite_input`, parameter ``rewrite``; both rewrites
are exact up to float rounding): torch exports ``image (NHWC) -> Transpose -> BatchNormalization ->
conv1``. The BatchNormalization is folded into conv1 (:func:`fold_input_norm`) and conv1 reads the
NHWC frame as it is (:func:`conv_reads_nhwc`), so the graph has no Transpose and no normalization
pass before its first convolution; in the int8 model no Transpose is left around the input's
quantization either.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from pilotnet_brains.models import INPUT_SHAPE
from pilotnet_brains.optimize.registry import BuildContext, register_method

INPUT_NAME = "image"
OUTPUT_NAME = "outputs"


def export_onnx(base: str, out: str, opset: int = 17, rewrite: bool = True) -> list[str]:
    """torch base state dict -> ONNX (NHWC input named ``image``, dynamic batch); with ``rewrite``
    the exact input rewrites of :func:`rewrite_input`. Returns the rewrites applied."""
    import onnx
    import torch

    from pilotnet_brains.models.torch_pilotnet import load

    model = load(base)
    example = torch.zeros((1,) + INPUT_SHAPE)
    with torch.inference_mode():
        torch.onnx.export(model, (example,), out, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=opset, dynamo=False)
    if not rewrite:
        return []
    graph = onnx.load(out)
    done = rewrite_input(graph)
    onnx.checker.check_model(graph)
    onnx.save(graph, out)
    return done


def _attrs(node) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _consumers(graph, name: str) -> list:
    return [n for n in graph.node if name in n.input]


def _unpadded_conv(node) -> bool:
    """A plain convolution that adds no border: no padding, no dilation, one group."""
    a = _attrs(node)
    return (node.op_type == "Conv" and not any(a.get("pads", [0])) and a.get("auto_pad", b"NOTSET") in (b"NOTSET", b"VALID")
            and all(d == 1 for d in a.get("dilations", [1])) and int(a.get("group", 1)) == 1)


def _constants(graph) -> dict:
    """name -> initializer, also for the outputs of Identity nodes of initializers (the exporter
    shares equal tensors, e.g. a fresh BatchNormalization's ones and zeros, through them)."""
    out = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in out:
            out[node.output[0]] = out[node.input[0]]
    return out


def _prune(graph) -> None:
    """Drop the Identity nodes and initializers nothing reads any more."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if n.op_type == "Identity" and n.output[0] not in used]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def fold_input_norm(model) -> bool:
    """Fold a BatchNormalization that feeds only an unpadded convolution into that convolution, in
    place; True if it did.

    Inference-mode BatchNormalization is a per-channel affine map ``a * x + b`` (``a = gamma /
    sqrt(var + eps)``, ``b = beta - mean * a``). Every output of a convolution that pads nothing is
    ``sum(W * (a * x + b)) + B = sum((W * a) * x) + (B + sum(W * b))``: the same convolution with
    per-input-channel scaled weights and a shifted bias -- exact up to float rounding. (With
    padding, the border zeros would not get the ``b`` shift and the fold would not be exact.) The
    new weights and bias are computed in float64 and stored as float32.
    """
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    inits = _constants(graph)
    for bn in graph.node:
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1 or not all(n in inits for n in bn.input[1:5]):
            continue
        users = _consumers(graph, bn.output[0])
        if len(users) != 1 or not _unpadded_conv(users[0]) or list(users[0].input[:1]) != [bn.output[0]] \
                or users[0].input[1] not in inits or (len(users[0].input) > 2 and users[0].input[2] not in inits):
            continue
        conv = users[0]
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        scale = gamma / np.sqrt(var + float(_attrs(bn).get("epsilon", 1e-5)))
        shift = beta - mean * scale
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        bias = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2
                else np.zeros(w.shape[0]))
        prefix = conv.name or conv.output[0]
        graph.initializer.extend([
            numpy_helper.from_array((w * scale[None, :, None, None]).astype(np.float32), f"{prefix}.folded_weight"),
            numpy_helper.from_array((bias + np.einsum("oihw,i->o", w, shift)).astype(np.float32),
                                    f"{prefix}.folded_bias")])
        conv.input[:] = [bn.input[0], f"{prefix}.folded_weight", f"{prefix}.folded_bias"]
        graph.node.remove(bn)
        _prune(graph)
        return True
    return False


def conv_reads_nhwc(model) -> bool:
    """Make the first convolution read the NHWC input as it is, in place; True if it did.

    The pattern is ``input (N, H, W, C) -> Transpose(0, 3, 1, 2) -> unpadded Conv`` (kernel kh x kw,
    strides sh x sw). An NHWC frame viewed as one channel of H rows of W*C values (a Reshape, no
    copy) holds each pixel's C values side by side, so a kh x (kw*C) window at column stride sw*C
    covers exactly the kh x kw pixels (all channels) of the original window: the convolution with
    weights ``W'[o, 0, i, j*C + c] = W[o, c, i, j]`` gives the same outputs in the same order, with
    no Transpose. Needs static H, W, C.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = _constants(graph)
    for inp in graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in inp.type.tensor_type.shape.dim]
        users = _consumers(graph, inp.name)
        if len(dims) != 4 or not all(dims[1:]) or len(users) != 1 or users[0].op_type != "Transpose" \
                or list(_attrs(users[0]).get("perm", [])) != [0, 3, 1, 2]:
            continue
        transpose = users[0]
        convs = _consumers(graph, transpose.output[0])
        if len(convs) != 1 or not _unpadded_conv(convs[0]) or convs[0].input[0] != transpose.output[0] \
                or convs[0].input[1] not in inits:
            continue
        conv = convs[0]
        _, h, w, c = dims
        weight = numpy_helper.to_array(inits[conv.input[1]])
        out_c, _, kh, kw = weight.shape
        sh, sw = _attrs(conv).get("strides", [1, 1])
        prefix = conv.name or conv.output[0]
        graph.initializer.extend([
            numpy_helper.from_array(np.ascontiguousarray(weight.transpose(0, 2, 3, 1).reshape(out_c, 1, kh, kw * c)),
                                    f"{prefix}.nhwc_weight"),
            numpy_helper.from_array(np.array([0, 1, h, w * c], np.int64), f"{inp.name}.rows_shape")])
        rows = helper.make_node("Reshape", [inp.name, f"{inp.name}.rows_shape"], [f"{inp.name}_rows"],
                                name=f"/{inp.name}_rows")
        new = helper.make_node("Conv", [f"{inp.name}_rows", f"{prefix}.nhwc_weight", *conv.input[2:]],
                               list(conv.output), name=conv.name, kernel_shape=[kh, kw * c],
                               strides=[sh, sw * c], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
        nodes = [rows if n is transpose else new if n is conv else n for n in graph.node]
        del graph.node[:]
        graph.node.extend(nodes)
        _prune(graph)
        return True
    return False


def rewrite_input(model) -> list[str]:
    """The exact input rewrites, in place: the input BatchNormalization folded into conv1, then conv1
    reading NHWC rows instead of a transposed frame. Returns the names of those applied."""
    done = []
    if fold_input_norm(model):
        done.append("input BatchNormalization folded into conv1")
    if conv_reads_nhwc(model):
        done.append("conv1 reads the NHWC input (no Transpose)")
    return done


@register_method("onnx_fp32", opset=17, rewrite=True)
def onnx_fp32(ctx: BuildContext) -> dict[str, Any]:
    """ONNX float32 (torch.onnx.export, TorchScript-based exporter), input rewritten exactly."""
    done = export_onnx(ctx.base, ctx.out, int(ctx.params["opset"]), bool(ctx.params["rewrite"]))
    return {"opset": int(ctx.params["opset"]), "exporter": "torch.onnx.export(dynamo=False)", "rewrites": done}


def _float_nodes(path: str, float_conv1: bool) -> list:
    """The nodes before the first convolution (and that convolution with ``float_conv1``)."""
    import onnx

    names = []
    for node in onnx.load(path).graph.node:
        if node.op_type == "Conv":
            return names + ([node.name] if float_conv1 else [])
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


@register_method("onnx_int8", opset=17, calibration_frames=100, per_channel=True, calibrate_method="MinMax",
                 rewrite=True, float_conv1=True)
def onnx_int8(ctx: BuildContext) -> dict[str, Any]:
    """Static int8 QDQ (uint8 activations, int8 per-channel weights) calibrated on representative frames,
    of the rewritten export (``rewrite``). ``float_conv1``: conv1 (3 input channels, a fifth of
    the network's multiply-adds) stays float32 -- ONNX Runtime's float kernel ran it faster than
    its int8 one on this CPU (see docs/backends.md)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    frames = ctx.calibration()
    method = getattr(CalibrationMethod, str(ctx.params["calibrate_method"]))
    per_channel = bool(ctx.params["per_channel"])
    with tempfile.TemporaryDirectory(prefix="onnx_int8_") as tmp:
        fp32 = os.path.join(tmp, "fp32.onnx")
        prepped = os.path.join(tmp, "prepped.onnx")
        done = export_onnx(ctx.base, fp32, int(ctx.params["opset"]), bool(ctx.params["rewrite"]))
        quant_pre_process(fp32, prepped, skip_symbolic_shape=True)
        # what comes before conv1 stays float (quantizing it only adds Q/DQ pairs)
        excluded = _float_nodes(prepped, bool(ctx.params["float_conv1"]))
        quantize_static(prepped, ctx.out, _Reader(frames), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=per_channel, calibrate_method=method, nodes_to_exclude=excluded)
    return {"format": "QDQ", "activations": "QUInt8", "weights": "QInt8", "per_channel": per_channel,
            "calibrate_method": str(ctx.params["calibrate_method"]), "calibration_frames": len(frames),
            "opset": int(ctx.params["opset"]), "float_nodes": excluded, "rewrites": done,
            "float_conv1": bool(ctx.params["float_conv1"])}
