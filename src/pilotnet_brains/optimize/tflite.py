"""TFLite conversions of the tf_keras base model (post-training; no fine-tuning)."""
from __future__ import annotations

from typing import Any

from pilotnet_brains.optimize.registry import BuildContext, OptimizeError, register_method
from pilotnet_brains.util import atomic_write_bytes


def fold_input_norm(model):
    """The model with its input BatchNormalization folded into the first convolution: a new model of
    the same layers (shared) without it, conv1's weights and bias replaced -- exact up to float
    rounding because conv1 pads nothing (the argument of
    :func:`pilotnet_brains.optimize.onnx_methods.fold_input_norm`, weights laid out (kh, kw, in,
    out) here). The converter otherwise keeps the normalization as a multiply and an add over the
    whole input. A model that does not start with BatchNormalization -> unpadded Conv2D is returned
    as it is."""
    import numpy as np

    from pilotnet_brains.models.tf_pilotnet import keras_module

    keras = keras_module()
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(layers) < 2 or not isinstance(layers[0], keras.layers.BatchNormalization) \
            or not isinstance(layers[1], keras.layers.Conv2D) or layers[1].padding != "valid" \
            or tuple(layers[1].dilation_rate) != (1, 1) or getattr(layers[1], "groups", 1) != 1 \
            or any(len(layer._inbound_nodes) != 1 for layer in layers):
        return model
    norm, conv = layers[0], layers[1]
    gamma, beta, mean, var = (np.asarray(w, np.float64) for w in norm.get_weights())
    scale = gamma / np.sqrt(var + norm.epsilon)
    shift = beta - mean * scale
    w, bias = (np.asarray(v, np.float64) for v in conv.get_weights())
    conv.set_weights([(w * scale[None, None, :, None]).astype(np.float32),
                      (bias + np.einsum("hwio,i->o", w, shift)).astype(np.float32)])
    inputs = keras.Input(shape=model.input_shape[1:], name=model.inputs[0].name.split(":")[0])
    x = inputs
    for layer in layers[1:]:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def _converter(ctx: BuildContext):
    import tensorflow as tf

    from pilotnet_brains.models.tf_pilotnet import load

    model = load(ctx.base)
    if ctx.params.get("fold_input_norm", True):
        model = fold_input_norm(model)
    return tf, tf.lite.TFLiteConverter.from_keras_model(model)


def _representative(ctx: BuildContext):
    frames = ctx.calibration()

    def gen():
        for i in range(len(frames)):
            yield [frames[i:i + 1]]

    return gen, len(frames)


def _write(ctx: BuildContext, converter) -> None:
    atomic_write_bytes(ctx.out, converter.convert())


@register_method("tflite_fp32", fold_input_norm=True)
def tflite_fp32(ctx: BuildContext) -> dict[str, Any]:
    """TFLite float32 flatbuffer."""
    _, conv = _converter(ctx)
    _write(ctx, conv)
    return {"fold_input_norm": bool(ctx.params["fold_input_norm"])}


@register_method("tflite_dynamic", fold_input_norm=True)
def tflite_dynamic(ctx: BuildContext) -> dict[str, Any]:
    """Dynamic-range quantization: int8 weights, float activations."""
    tf, conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    _write(ctx, conv)
    return {"optimizations": ["DEFAULT"], "fold_input_norm": bool(ctx.params["fold_input_norm"])}


@register_method("tflite_fp16", fold_input_norm=True)
def tflite_fp16(ctx: BuildContext) -> dict[str, Any]:
    """float16 weights (dequantized to float32 on CPU)."""
    tf, conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    _write(ctx, conv)
    return {"optimizations": ["DEFAULT"], "supported_types": ["float16"],
            "fold_input_norm": bool(ctx.params["fold_input_norm"])}


@register_method("tflite_int8", io_type="uint8", calibration_frames=100, fold_input_norm=True)
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
    return {"io_type": io, "calibration_frames": n, "supported_ops": ["TFLITE_BUILTINS_INT8"],
            "fold_input_norm": bool(ctx.params["fold_input_norm"])}


@register_method("tflite_int8_fallback", calibration_frames=100, fold_input_norm=True)
def tflite_int8_fallback(ctx: BuildContext) -> dict[str, Any]:
    """int8 weights and activations, float ops where no int8 kernel exists, float32 input/output."""
    tf, conv = _converter(ctx)
    gen, n = _representative(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    _write(ctx, conv)
    return {"calibration_frames": n, "io_type": "float32", "fold_input_norm": bool(ctx.params["fold_input_norm"])}
