"""TorchScript conversions of the torch base model (post-training; no fine-tuning), and the helpers
the fine-tuning torch methods share: :func:`load_base`, :func:`save_script`, :func:`quantized_engine`."""
from __future__ import annotations

from typing import Any

from pilotnet_brains.models import INPUT_SHAPE
from pilotnet_brains.optimize.registry import BuildContext, OptimizeError, register_method


def load_base(ctx: BuildContext):
    """(torch, the torch base model at ``ctx.base``) -- shared with the fine-tuning methods."""
    import torch

    from pilotnet_brains.models.torch_pilotnet import load

    try:
        return torch, load(ctx.base)
    except Exception as e:
        raise OptimizeError(f"{ctx.method}: cannot load the torch base model {ctx.base} (a PilotNetTorch "
                            f"state dict): {type(e).__name__}: {e}") from e


def save_script(torch, module, ctx: BuildContext, freeze: bool = True) -> None:
    """Trace ``module`` on one input (frozen unless ``freeze`` is False) and save it to ``ctx.out``."""
    example = torch.zeros((1,) + INPUT_SHAPE)
    with torch.inference_mode():
        traced = torch.jit.trace(module, example, check_trace=False)
        if freeze:
            traced = torch.jit.freeze(traced)
    torch.jit.save(traced, ctx.out)


def quantized_engine(torch, ctx: BuildContext) -> str:
    """Select ``ctx.params["engine"]`` (default x86) as torch's quantized engine; returns its name."""
    engine = str(ctx.params.get("engine", "x86"))
    if engine not in torch.backends.quantized.supported_engines:
        raise OptimizeError(f"{ctx.method}: quantized engine {engine!r} is not supported by this torch "
                            f"(supported: {torch.backends.quantized.supported_engines})")
    torch.backends.quantized.engine = engine
    return engine


@register_method("torchscript")
def torchscript(ctx: BuildContext) -> dict[str, Any]:
    """Traced and frozen TorchScript, float32."""
    torch, model = load_base(ctx)
    save_script(torch, model, ctx)
    return {"trace": True, "freeze": True}


@register_method("torch_dynamic")
def torch_dynamic(ctx: BuildContext) -> dict[str, Any]:
    """Dynamic quantization of the Linear layers (int8 weights, activations quantized on the fly)."""
    torch, model = load_base(ctx)
    engine = quantized_engine(torch, ctx)
    q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    save_script(torch, q, ctx, freeze=False)
    return {"modules": ["Linear"], "dtype": "qint8", "quantized_engine": engine}


@register_method("torch_static", engine="x86", calibration_frames=100, calibration_batch=10)
def torch_static(ctx: BuildContext) -> dict[str, Any]:
    """Eager static quantization: Conv+ReLU and Linear+ReLU fused, observers calibrated, int8 (x86/fbgemm)."""
    from pilotnet_brains.models.torch_pilotnet import FUSE_PAIRS

    torch, model = load_base(ctx)
    engine = quantized_engine(torch, ctx)
    fused = torch.ao.quantization.fuse_modules(model, FUSE_PAIRS)
    fused.qconfig = torch.ao.quantization.get_default_qconfig(engine)
    fused.input_norm.qconfig = None          # the input BatchNorm stays float, before the QuantStub
    prepared = torch.ao.quantization.prepare(fused)
    frames = ctx.calibration()
    batch = int(ctx.params["calibration_batch"])
    with torch.inference_mode():
        for i in range(0, len(frames), batch):
            prepared(torch.from_numpy(frames[i:i + batch]))
    q = torch.ao.quantization.convert(prepared)
    save_script(torch, q, ctx, freeze=False)
    return {"engine": engine, "quantized_engine": engine, "calibration_frames": len(frames),
            "fused": [list(p) for p in FUSE_PAIRS], "qconfig": f"get_default_qconfig({engine!r})"}
