"""PilotNet in torch: NHWC input (permuted inside forward), ready for eager-mode static quantization.

Conv+ReLU and Linear+ReLU pairs are separate named modules listed in :data:`FUSE_PAIRS`, so
``torch.ao.quantization.fuse_modules`` can fuse them; the QuantStub sits after the float input
BatchNorm (a BatchNorm before a conv cannot be folded), the DeQuantStub before the output. Both stubs
are identities until the model is prepared for quantization.
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from pilotnet_brains.models import CONV_LAYERS, DENSE_LAYERS, FLATTEN_SIZE, INPUT_SHAPE, N_OUTPUTS
from pilotnet_brains.preprocess import ModelMeta, write_meta

#: Module-name pairs to fuse for static quantization / QAT.
FUSE_PAIRS: list[list[str]] = ([[f"conv{i}", f"relu_conv{i}"] for i in range(1, len(CONV_LAYERS) + 1)]
                               + [[f"fc{i}", f"relu_fc{i}"] for i in range(1, len(DENSE_LAYERS) + 1)])


class PilotNetTorch(nn.Module):
    """PilotNet; forward takes float32 (N, 66, 200, 3) NHWC in [0, 1], returns (N, 2)."""

    def __init__(self):
        super().__init__()
        self.input_norm = nn.BatchNorm2d(INPUT_SHAPE[2])
        self.quant = torch.ao.quantization.QuantStub()
        channels = INPUT_SHAPE[2]
        for i, (filters, kernel, stride) in enumerate(CONV_LAYERS, start=1):
            setattr(self, f"conv{i}", nn.Conv2d(channels, filters, kernel, stride=stride))
            setattr(self, f"relu_conv{i}", nn.ReLU())
            channels = filters
        width = FLATTEN_SIZE
        for i, units in enumerate(DENSE_LAYERS, start=1):
            setattr(self, f"fc{i}", nn.Linear(width, units))
            setattr(self, f"relu_fc{i}", nn.ReLU())
            width = units
        self.outputs = nn.Linear(width, N_OUTPUTS)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)          # NHWC -> NCHW view (channels_last memory)
        x = self.input_norm(x)
        x = self.quant(x)
        x = self.relu_conv1(self.conv1(x))
        x = self.relu_conv2(self.conv2(x))
        x = self.relu_conv3(self.conv3(x))
        x = self.relu_conv4(self.conv4(x))
        x = self.relu_conv5(self.conv5(x))
        x = torch.flatten(x, 1)
        x = self.relu_fc1(self.fc1(x))
        x = self.relu_fc2(self.fc2(x))
        x = self.relu_fc3(self.fc3(x))
        x = self.relu_fc4(self.fc4(x))
        x = self.outputs(x)
        return self.dequant(x)


def build(seed: int = 0) -> PilotNetTorch:
    """A PilotNetTorch with weights drawn from ``seed`` (He normal for ReLU layers -- so even a
    random-weight model's outputs depend on its input -- zero biases), in eval mode."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = PilotNetTorch()
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.eval()


def load(path: str) -> PilotNetTorch:
    """Load a state dict saved by :func:`save` into a fresh model (eval mode)."""
    model = PilotNetTorch()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a PilotNetTorch state dict (got {type(state).__name__})")
    model.load_state_dict(state)
    return model.eval()


def save(model: nn.Module, path: str, extra: dict[str, Any] | None = None, method: str = "train") -> str:
    """Save ``model``'s state dict to ``path`` atomically, with its sidecar; returns path."""
    import io

    from pilotnet_brains.util import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    atomic_write_bytes(path, buf.getvalue())
    write_meta(path, ModelMeta(framework="torch", method=method, extra=dict(extra or {})))
    return os.path.abspath(path)
