"""TFLite conversions of the tf_keras base model (post-training; no fine-tuning)."""
from __future__ import annotations

from typing import Any

from pilotnet_brains.optimize.registry import BuildContext, OptimizeError, register_method
from pilotnet_brains.util import atomic_write_bytes


def _converter(ctx: BuildContext):
    import tensorflow as tf

    from pilotnet_brains.models.tf_pilotnet import load

    model = load(ctx.base)
    return tf, tf.lite.TFLiteConverter.from_keras_model(model)


def _representative(ctx: BuildContext):
    frames = ctx.calibration()

    def gen():
        for i in range(len(frames)):
            yield [frames[i:i + 1]]

    return gen, len(frames)


def _write(ctx: BuildContext, converter) -> None:
    atomic_write_bytes(ctx.out, converter.convert())


@register_method("tflite_fp32")
def tflite_fp32(ctx: BuildContext) -> dict[str, Any]:
    """TFLite float32 flatbuffer."""
    _, conv = _converter(ctx)
    _write(ctx, conv)
    return {}


@register_method("tflite_dynamic")
def tflite_dynamic(ctx: BuildContext) -> dict[str, Any]:
    """Dynamic-range quantization: int8 weights, float activations."""
    tf, conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    _write(ctx, conv)
    return {"optimizations": ["DEFAULT"]}


@register_method("tflite_fp16")
def tflite_fp16(ctx: BuildContext) -> dict[str, Any]:
    """float16 weights (dequantized to float32 on CPU)."""
    tf, conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    _write(ctx, conv)
    return {"optimizations": ["DEFAULT"], "supported_types": ["float16"]}


@register_method("tflite_int8", io_type="uint8", calibration_frames=100)
def tflite_int8(ctx: BuildContext) -> dict[str, Any]:
    """Full-integer int8 with integer input/output (uint8 by default: the input scale is then 1/255)."""
    tf, conv = _converter(ctx)
    io = str(ctx.params["io_type"])
    if io not in ("uint8", "int8"):
        raise OptimizeError(f"tflite_int8: io_type {io!r}; use uint8 or int8")
    gen, n = _representative(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = getattr(tf, io)
    conv.inference_output_type = getattr(tf, io)
    _write(ctx, conv)
    return {"io_type": io, "calibration_frames": n, "supported_ops": ["TFLITE_BUILTINS_INT8"]}


@register_method("tflite_int8_fallback", calibration_frames=100)
def tflite_int8_fallback(ctx: BuildContext) -> dict[str, Any]:
    """int8 weights and activations, float ops where no int8 kernel exists, float32 input/output."""
    tf, conv = _converter(ctx)
    gen, n = _representative(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    _write(ctx, conv)
    return {"calibration_frames": n, "io_type": "float32"}
