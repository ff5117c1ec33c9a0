"""Native TensorRT engine built from the ONNX export of the torch base (tensorrt Python API).

Refused before anything is written on machines without TensorRT and an NVIDIA GPU.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from pilotnet_brains.models import INPUT_SHAPE
from pilotnet_brains.optimize.onnx_methods import INPUT_NAME, export_onnx
from pilotnet_brains.optimize.registry import BuildContext, OptimizeError, register_method
from pilotnet_brains.util import atomic_write_bytes


@register_method("tensorrt", fp16=True, max_batch=8, workspace_bytes=1 << 30)
def tensorrt_engine(ctx: BuildContext) -> dict[str, Any]:
    """TensorRT engine (FP16 where the GPU supports it) from ONNX, batch 1..max_batch."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory(prefix="trt_") as tmp:
        onnx_path = os.path.join(tmp, "model.onnx")
        export_onnx(ctx.base, onnx_path)
        with open(onnx_path, "rb") as f:
            if not parser.parse(f.read()):
                errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
                raise OptimizeError(f"tensorrt: the ONNX parser rejected the model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(ctx.params["workspace_bytes"]))
    fp16 = bool(ctx.params["fp16"]) and builder.platform_has_fast_fp16
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    max_batch = int(ctx.params["max_batch"])
    profile.set_shape(INPUT_NAME, (1,) + INPUT_SHAPE, (1,) + INPUT_SHAPE, (max_batch,) + INPUT_SHAPE)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise OptimizeError("tensorrt: the engine build failed (see the TensorRT log above)")
    atomic_write_bytes(ctx.out, bytes(engine))
    return {"fp16": fp16, "max_batch": max_batch, "tensorrt": trt.__version__}
