"""TF-TRT conversions (TrtGraphConverterV2 / tf.experimental.tensorrt.Converter) of the tf_keras base.

Follows TensorFlow's documented flow: save the Keras model as a SavedModel, ``converter.convert()``
(INT8: with a ``calibration_input_fn`` yielding representative frames), ``converter.build(input_fn)``
to pre-build the engines for batch 1, ``converter.save(out)``. Needs a GPU TensorFlow <= 2.17 with
TensorRT; elsewhere the method is refused before anything is imported or written
(:func:`pilotnet_brains.backends.machine.tftrt_missing`).
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from pilotnet_brains.optimize.registry import BuildContext, register_method


def _convert(ctx: BuildContext, precision: str) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.compiler.tensorrt import trt_convert as trt

    from pilotnet_brains.models.tf_pilotnet import load

    model = load(ctx.base)
    frames = ctx.calibration() if precision == "INT8" else None
    example = np.zeros((1,) + tuple(model.input_shape[1:]), np.float32)
    with tempfile.TemporaryDirectory(prefix="tftrt_src_") as src:
        sig = tf.function(lambda x: {"outputs": model(x, training=False)},
                          input_signature=[tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32,
                                                         name="image")])
        tf.saved_model.save(model, src, signatures={"serving_default": sig.get_concrete_function()})
        converter = trt.TrtGraphConverterV2(
            input_saved_model_dir=src,
            precision_mode=getattr(trt.TrtPrecisionMode, precision),
            max_workspace_size_bytes=int(ctx.params.get("workspace_bytes", 1 << 30)),
            use_calibration=precision == "INT8")

        if precision == "INT8":
            def calibration_input_fn():
                for i in range(len(frames)):
                    yield (tf.constant(frames[i:i + 1]),)

            converter.convert(calibration_input_fn=calibration_input_fn)
        else:
            converter.convert()

        def build_input_fn():
            yield (tf.constant(example),)

        converter.build(input_fn=build_input_fn)     # pre-build the batch-1 engine
        converter.save(ctx.out)
    assert os.path.isdir(ctx.out)
    params = {"precision_mode": precision, "prebuilt_batch": 1}
    if frames is not None:
        params["calibration_frames"] = len(frames)
    return params


@register_method("tftrt_fp32")
def tftrt_fp32(ctx: BuildContext) -> dict[str, Any]:
    """TF-TRT FP32 SavedModel with a pre-built engine."""
    return _convert(ctx, "FP32")


@register_method("tftrt_fp16")
def tftrt_fp16(ctx: BuildContext) -> dict[str, Any]:
    """TF-TRT FP16 SavedModel with a pre-built engine."""
    return _convert(ctx, "FP16")


@register_method("tftrt_int8", calibration_frames=500)
def tftrt_int8(ctx: BuildContext) -> dict[str, Any]:
    """TF-TRT INT8 SavedModel calibrated on representative frames, engine pre-built."""
    return _convert(ctx, "INT8")
