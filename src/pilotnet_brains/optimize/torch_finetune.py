"""Fine-tuning torch methods (eager mode, ``torch.ao.quantization`` and ``torch.nn.utils.prune``).

All start from the torch base model (a PilotNetTorch state dict), fine-tune on the training data
(``--data DIR``; augmented like training; Adam, MSE) and are saved as TorchScript (traced):

- ``torch_qat``: Conv+ReLU / Linear+ReLU fused (``fuse_modules_qat``), ``prepare_qat`` with the
  x86 (fbgemm) default QAT qconfig (the input BatchNorm stays float), fine-tuned with observers
  frozen and BatchNorm statistics kept for the last epoch's second half, ``convert`` -> int8.
- ``torch_pruned_global``: global L1 unstructured pruning of every Conv2d/Linear weight (30%),
  fine-tuned with the masks applied, ``prune.remove``; float32, frozen.
- ``torch_pruned_local``: per-layer L1 unstructured pruning (30% of each Conv2d, 50% of each Linear),
  fine-tuned, ``prune.remove``; float32, frozen.
- ``torch_pruned_quant``: global L1 pruning (30%), fine-tuned, then QAT (as torch_qat) with the
  pruning masks re-applied after every step, converted to int8: pruning + quantization.

Pruned artifacts record ``sparsity`` (fraction of zero weights over the pruned layers) and
``gzip_bytes`` in their sidecar parameters.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pilotnet_brains.optimize.finetune import FinetuneRun, progress_bar, sparsity
from pilotnet_brains.optimize.registry import BuildContext, register_method
from pilotnet_brains.optimize.torch_methods import load_base, quantized_engine, save_script

#: ``skip_layers``: the 2-unit output layer is not pruned (saves nothing, costs accuracy).
COMMON = {"skip_layers": ["outputs"], "freeze_norm": True, "epochs": 2, "batch_size": 64, "learning_rate": 1e-4, "seed": 0, "augment": True,
          "max_frames": 10000, "max_steps": 0, "fraction": 1.0}
#: QAT on a fraction of the data (DLS: 1%; 10% here, at most 5000 frames).
QAT = dict(COMMON, fraction=0.1, max_frames=5000, engine="x86")


class _Run(FinetuneRun):
    def __init__(self, ctx: BuildContext):
        import torch

        self.torch, self.model = load_base(ctx)
        torch.manual_seed(int(ctx.params.get("seed", 0)))
        super().__init__(ctx, self._predict)
        self._stream = self.batches()

    def _predict(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return np.concatenate([self.model(self.torch.from_numpy(x[i:i + 64])).numpy()
                                   for i in range(0, len(x), 64)])

    def fit(self, model, desc: str, after_step=None, on_epoch=None) -> float:
        """Fine-tune ``model`` in train mode; ``after_step()`` runs after each optimizer step,
        ``on_epoch(epoch)`` before each epoch. Returns the last epoch's mean loss."""
        torch = self.torch
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                               lr=float(self.ctx.params["learning_rate"]))
        bar = progress_bar(self.ctx, self.epochs * self.steps, f"{self.ctx.method}: {desc}")
        losses: list[float] = []
        try:
            for epoch in range(self.epochs):
                if on_epoch is not None:
                    on_epoch(epoch)
                model.train()
                self._freeze_norm(model)
                losses = []
                for _ in range(self.steps):
                    xb, yb = next(self._stream)
                    opt.zero_grad()
                    loss = torch.mean((model(torch.from_numpy(xb)) - torch.from_numpy(yb)) ** 2)
                    loss.backward()
                    opt.step()
                    if after_step is not None:
                        after_step()
                    losses.append(loss.item())
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
        finally:
            bar.close()
        model.eval()
        mean = float(np.mean(losses)) if losses else float("nan")
        self.params.setdefault("final_loss", {})[desc] = round(mean, 6)
        return mean

    def _freeze_norm(self, model) -> None:
        """Keep BatchNorm layers in eval mode (running statistics fixed) while fine-tuning, unless
        ``freeze_norm`` is False: fine-tuning adjusts weights, not the input normalization."""
        if not bool(self.ctx.params.get("freeze_norm", True)):
            return
        for m in model.modules():
            if isinstance(m, self.torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)

    # -- pruning ---------------------------------------------------------------------------------
    def prunable(self, model) -> list[tuple[str, Any]]:
        """Conv2d/Linear modules to prune: all but those named in ``skip_layers`` (the output layer)."""
        nn = self.torch.nn
        skip = set(self.ctx.params.get("skip_layers") or ())
        return [(name, m) for name, m in model.named_modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and name not in skip]

    def prune(self, mode: str) -> dict[str, np.ndarray]:
        """L1-unstructured prune ``self.model`` ("global": one threshold over all weights; "local":
        per layer, conv/linear amounts), fine-tune with the masks, make it permanent. Returns the masks."""
        import torch.nn.utils.prune as prune

        torch = self.torch
        layers = self.prunable(self.model)
        if mode == "global":
            amount = float(self.ctx.params["amount"])
            prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured,
                                      amount=amount)
            self.params["pruning"] = {"kind": "global L1 unstructured", "amount": amount,
                                      "layers": [n for n, _ in layers]}
        else:
            conv_amount, lin_amount = float(self.ctx.params["conv_amount"]), float(self.ctx.params["linear_amount"])
            for _, m in layers:
                prune.l1_unstructured(m, "weight", amount=conv_amount if isinstance(m, torch.nn.Conv2d) else lin_amount)
            self.params["pruning"] = {"kind": "local L1 unstructured", "conv_amount": conv_amount,
                                      "linear_amount": lin_amount, "layers": [n for n, _ in layers]}
        self.fit(self.model, "prune")
        masks = {}
        for name, m in layers:
            masks[name] = m.weight_mask.detach().clone()
            prune.remove(m, "weight")
        self.params["sparsity"] = round(self.weight_sparsity(self.model), 4)
        return masks

    def weight_sparsity(self, model) -> float:
        return sparsity([m.weight.detach().numpy() for _, m in self.prunable(model)])

    # -- quantization-aware training -----------------------------------------------------------------
    def qat(self, masks: dict[str, Any] | None = None):
        """Fuse, prepare_qat (x86/fbgemm), fine-tune (optionally keeping pruning masks), convert."""
        from pilotnet_brains.models.torch_pilotnet import FUSE_PAIRS

        torch = self.torch
        aq = torch.ao.quantization
        engine = quantized_engine(torch, self.ctx)
        model = self.model.train()
        fused = aq.fuse_modules_qat(model, FUSE_PAIRS)
        fused.qconfig = aq.get_default_qat_qconfig(engine)
        fused.input_norm.qconfig = None             # float BatchNorm before the QuantStub
        prepared = aq.prepare_qat(fused)
        after = None
        if masks:
            # fused modules keep the Conv/Linear names (conv1 -> ConvReLU2d), weights at .weight
            targets = [(dict(prepared.named_modules())[name].weight, mask) for name, mask in masks.items()]

            def after():
                with torch.no_grad():
                    for w, mask in targets:
                        w.mul_(mask)

            after()
        last = self.epochs - 1

        def on_epoch(epoch: int) -> None:
            if epoch == last and self.epochs > 1:     # settle: freeze observers for the last epoch
                prepared.apply(aq.disable_observer)

        self.fit(prepared, "qat", after_step=after, on_epoch=on_epoch)
        prepared.eval()
        if masks:
            self.params["sparsity_before_convert"] = round(sparsity([w.detach().numpy() for w, _ in targets]), 4)
        q = aq.convert(prepared)
        self.params.update({"engine": engine, "quantized_engine": engine,
                            "qconfig": f"get_default_qat_qconfig({engine!r})",
                            "fused": [list(p) for p in FUSE_PAIRS]})
        return q

    def save(self, module, freeze: bool) -> dict[str, Any]:
        save_script(self.torch, module, self.ctx, freeze=freeze)
        return self.finish()


@register_method("torch_qat", **QAT)
def torch_qat(ctx: BuildContext) -> dict[str, Any]:
    """Quantization-aware training: fused, prepare_qat (x86/fbgemm), fine-tuned, converted to int8."""
    run = _Run(ctx)
    return run.save(run.qat(), freeze=False)


@register_method("torch_pruned_global", amount=0.3, **COMMON)
def torch_pruned_global(ctx: BuildContext) -> dict[str, Any]:
    """Global L1 unstructured pruning (30% of all Conv2d/Linear weights), fine-tuned, made permanent."""
    run = _Run(ctx)
    run.prune("global")
    return run.save(run.model, freeze=True)


@register_method("torch_pruned_local", conv_amount=0.3, linear_amount=0.5, **COMMON)
def torch_pruned_local(ctx: BuildContext) -> dict[str, Any]:
    """Per-layer L1 unstructured pruning (30% conv, 50% linear), fine-tuned, made permanent."""
    run = _Run(ctx)
    run.prune("local")
    return run.save(run.model, freeze=True)


@register_method("torch_pruned_quant", amount=0.3, **QAT)
def torch_pruned_quant(ctx: BuildContext) -> dict[str, Any]:
    """Global L1 pruning (30%), fine-tuned, then QAT keeping the pruning masks; int8 (x86/fbgemm)."""
    run = _Run(ctx)
    masks = run.prune("global")
    return run.save(run.qat(masks), freeze=False)
