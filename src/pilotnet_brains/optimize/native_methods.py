"""``native_int8``: the torch base model quantized for the package's own int8 kernels
(:mod:`pilotnet_brains.native`), calibrated on representative frames."""
from __future__ import annotations

import io
from typing import Any

import numpy as np

from pilotnet_brains.optimize.registry import BuildContext, OptimizeError, register_method


@register_method("native_int8", calibration_frames=100)
def native_int8(ctx: BuildContext) -> dict[str, Any]:
    """Input BatchNorm folded into conv1, int8 per-channel weights, uint8 activations scaled to each
    ReLU output's largest calibration value; an .npz the kernels pack at load time."""
    from pilotnet_brains import native
    from pilotnet_brains.optimize.torch_methods import load_base
    from pilotnet_brains.util import atomic_write_bytes

    pre = ctx.preprocessing()
    if not pre.bytes_in:
        raise OptimizeError(f"native_int8: the kernels take the frame's bytes as x * 255, so the base model "
                            f"{ctx.base} must see frames scaled by 1/255 without mean or std (its sidecar "
                            f"says scale {pre.scale}, mean {list(pre.mean)}, std {list(pre.std)}); use "
                            f"another int8 method (onnx_int8, tflite_int8) for this model")
    _, model = load_base(ctx)
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    frames = ctx.calibration()
    art = native.quantize(state, frames, bn_eps=float(model.input_norm.eps))
    buf = io.BytesIO()
    np.savez(buf, **art)
    atomic_write_bytes(ctx.out, buf.getvalue())
    return {"format": native.FORMAT, "calibration_frames": len(frames), "weights": "int8 per output channel",
            "activations": "uint8, scale = largest ReLU output / 255", "input_batchnorm": "folded into conv1"}
