"""Fine-tuning TFLite methods with the TensorFlow Model Optimization toolkit (tfmot 0.8, tf_keras).

Every method starts from the tf_keras base model, wraps only its Conv2D and Dense layers (the input
BatchNormalization stays float), fine-tunes on the training data (``--data DIR``; augmented like
training), strips the training wrappers and converts to TFLite:

- ``tflite_pruned``: magnitude pruning (``prune_low_magnitude``, PolynomialDecay sparsity
  50% -> 80% over the fine-tuning steps), ``strip_pruning``, float32 TFLite.
- ``tflite_pruned_dynamic``: the same, converted with dynamic-range quantization.
- ``tflite_qat``: quantization-aware training (``quantize_annotate_layer`` on Conv2D/Dense,
  ``quantize_apply``), converted to int8 (float input/output).
- ``tflite_cqat``: weight clustering (8 clusters, k-means++, per channel for Conv2D), fine-tuned,
  stripped, then cluster-preserving QAT (``Default8BitClusterPreserveQuantizeScheme``).
- ``tflite_pqat``: pruning to a constant 50% sparsity, fine-tuned, stripped, then
  sparsity-preserving QAT (``Default8BitPrunePreserveQuantizeScheme``).
- ``tflite_pcqat``: pruning (50%) then sparsity-preserving clustering, then
  pruning+cluster-preserving QAT (``Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)``).

Pruned artifacts record ``sparsity`` (fraction of zero weights in the pruned layers' kernels) and
``gzip_bytes`` (the artifact gzip-compressed) in their sidecar parameters.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pilotnet_brains.optimize.finetune import FinetuneRun, progress_bar, sparsity
from pilotnet_brains.optimize.registry import BuildContext, register_method
from pilotnet_brains.util import atomic_write_bytes

#: Layer types wrapped by pruning, clustering and QAT (the input BatchNormalization is left float).
WRAPPED = ("Conv2D", "Dense")

#: Fine-tuning defaults shared by all tfmot methods (DLS: 2 epochs of pruning; QAT on 1% of the data).
#: QAT here takes the same 10,000 frames as pruning: on 10% (1,600 frames, 50 steps) the int8 model
#: of the trained base lost 10 % test MSE against its parent even with calibrated activation ranges;
#: on 10,000 frames (312 steps, 55 s) it is within 1 %.
#: Pruning leaves the 2-unit output layer alone (``skip_layers``): its 20 weights save nothing and
#: cost accuracy (trained TF base, 80% magnitude pruning before fine-tuning: test MSE 0.207 with it
#: pruned, 0.137 kept; base 0.051).
COMMON = {"skip_layers": ["outputs"], "freeze_norm": True, "epochs": 2, "batch_size": 64, "learning_rate": 1e-4, "seed": 0, "augment": True,
          "max_frames": 10000, "max_steps": 0, "fraction": 1.0}
#: Magnitude pruning (tflite_pruned, tflite_pruned_dynamic): PolynomialDecay 50% -> 80% over the
#: first half of the steps. 80 % pruning fine-tunes twice as long: after 2 epochs (the first half
#: ramping 50 -> 80 %) the pruned model of the trained base touched Montmeló's inner wall twice (lap
#: MAE 0.216 m, parent 0.072); after 4 it drove every evaluation circuit without a contact (Montmeló 0.072 m).
PRUNING = {**COMMON, "epochs": 4, "initial_sparsity": 0.5, "final_sparsity": 0.8, "schedule_end": 0.5}


class _Run(FinetuneRun):
    """One method's tf/tfmot handles, the base model and the fine-tuning data."""

    def __init__(self, ctx: BuildContext):
        import os

        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tensorflow as tf
        import tensorflow_model_optimization as tfmot

        from pilotnet_brains.models.tf_pilotnet import keras_module

        keras = keras_module()

        from pilotnet_brains.models.tf_pilotnet import load

        self.tf, self.tfmot, self.keras = tf, tfmot, keras
        keras.utils.set_random_seed(int(ctx.params.get("seed", 0)))
        self.base = load(ctx.base)
        if bool(ctx.params.get("freeze_norm", True)):
            # BatchNormalization with trainable=False runs in inference mode (Keras 2): fine-tuning
            # adjusts the weights, not the input normalization statistics.
            self._set_norm_trainable(self.base, False)
        super().__init__(ctx, self._predict_base)
        self.params["wrapped_layers"] = list(WRAPPED)
        #: layers pruning leaves alone (``skip_layers``)
        self.skip = set(ctx.params.get("skip_layers") or ())

    def _predict_base(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.base(x[i:i + 64], training=False).numpy() for i in range(0, len(x), 64)])

    @staticmethod
    def _set_norm_trainable(model, trainable: bool) -> bool:
        """Set ``trainable`` on every BatchNormalization (also inside wrappers); True if any changed."""
        changed = False
        for layer in model.layers:
            inner = getattr(layer, "layer", layer)
            if type(inner).__name__ == "BatchNormalization" and inner.trainable != trainable:
                inner.trainable = trainable
                layer.trainable = trainable
                changed = True
        return changed

    # -- model surgery ---------------------------------------------------------------------------
    def wrapped_clone(self, model, wrap):
        """A functional clone of ``model`` with ``wrap(layer)`` around its Conv2D/Dense layers. The
        original layer objects are reused (wrapped or not), so every trained weight carries over --
        ``clone_model`` would otherwise re-initialise the layers it re-creates."""
        return self.keras.models.clone_model(
            model, clone_function=lambda layer: wrap(layer) if type(layer).__name__ in WRAPPED else layer)

    # -- fine-tuning -----------------------------------------------------------------------------
    def fit(self, model, desc: str, callbacks: list[Any] = (), epochs: int | None = None) -> float:
        """Fine-tune ``model`` (MSE, Adam); returns the last epoch's mean training loss."""
        keras = self.keras
        epochs = int(epochs or self.epochs)
        model.compile(optimizer=keras.optimizers.Adam(float(self.ctx.params["learning_rate"])), loss="mse")
        bar = progress_bar(self.ctx, epochs * self.steps, f"{self.ctx.method}: {desc}")

        class Bar(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                bar.update(1)
                if logs and "loss" in logs:
                    bar.set_postfix(loss=f"{logs['loss']:.4f}")

        stream = self.batches()
        try:
            hist = model.fit(stream, steps_per_epoch=self.steps, epochs=epochs, verbose=0,
                             callbacks=list(callbacks) + [Bar()])
        finally:
            bar.close()
        loss = float(hist.history["loss"][-1])
        self.params.setdefault("final_loss", {})[desc] = round(loss, 6)
        return loss

    # -- the tfmot steps -----------------------------------------------------------------------
    def prune(self, model, initial: float, final: float, desc: str = "prune"):
        """Magnitude-prune the Conv2D/Dense kernels (PolynomialDecay initial -> final, or constant
        ``final`` when initial == final), fine-tune, strip. Returns the stripped model."""
        sp = self.tfmot.sparsity.keras
        total = self.epochs * self.steps
        if initial == final or total < 2:
            sched = sp.ConstantSparsity(final, begin_step=0, frequency=1)
            self.params["pruning_schedule"] = {"kind": "ConstantSparsity", "target_sparsity": final}
        else:
            # reach ``final`` after ``schedule_end`` of the steps and fine-tune at it for the rest: a
            # schedule that ends on the last step (tfmot's guide) leaves the final mask no recovery
            # steps (trained base, 50 -> 80 % over 2 epochs: test MSE 5.7x the parent's, off track)
            span = max(1, int(round((total - 1) * float(self.ctx.params.get("schedule_end", 0.5)))))
            freq = max(1, span // 10)
            end = freq * (span // freq)
            sched = sp.PolynomialDecay(initial_sparsity=initial, final_sparsity=final, begin_step=0,
                                       end_step=end, frequency=freq)
            self.params["pruning_schedule"] = {"kind": "PolynomialDecay", "initial_sparsity": initial,
                                               "final_sparsity": final, "begin_step": 0, "end_step": end,
                                               "frequency": freq}
        pruned = self.wrapped_clone(model, lambda layer: layer if layer.name in self.skip else
                                    sp.prune_low_magnitude(layer, pruning_schedule=sched))
        self.fit(pruned, desc, [sp.UpdatePruningStep()])
        stripped = sp.strip_pruning(pruned)
        self.params["sparsity"] = round(kernel_sparsity(stripped, self.skip), 4)
        self.params["pruned_layers"] = [la.name for la in stripped.layers
                                        if type(la).__name__ in WRAPPED and la.name not in self.skip]
        self.params["target_sparsity"] = final
        return stripped

    def cluster(self, model, preserve_sparsity: bool, desc: str = "cluster"):
        """Cluster the Conv2D/Dense weights (k-means++, per channel for Conv2D), fine-tune, strip."""
        # The experimental cluster_weights (preserve_sparsity, cluster_per_channel) is not re-exported
        # by tfmot's public API in 0.8: import it from its module.
        from tensorflow_model_optimization.python.core.clustering.keras.experimental.cluster import (
            cluster_weights,
        )

        cl = self.tfmot.clustering.keras
        n = int(self.ctx.params.get("clusters", 8))
        per_channel = bool(self.ctx.params.get("per_channel", True))

        def wrap(layer):
            return cluster_weights(
                layer, number_of_clusters=n, cluster_centroids_init=cl.CentroidInitialization.KMEANS_PLUS_PLUS,
                preserve_sparsity=preserve_sparsity,
                cluster_per_channel=per_channel and type(layer).__name__ == "Conv2D")

        clustered = self.wrapped_clone(model, wrap)
        self.fit(clustered, desc)
        stripped = cl.strip_clustering(clustered)
        self.params["clustering"] = {"number_of_clusters": n, "init": "KMEANS_PLUS_PLUS",
                                     "per_channel": "Conv2D" if per_channel else "none",
                                     "preserve_sparsity": preserve_sparsity}
        self.params["max_unique_weights_per_channel"] = max_unique_per_channel(stripped)
        return stripped

    def qat(self, model, scheme_name: str, desc: str = "qat"):
        """Quantization-aware fine-tuning of the Conv2D/Dense layers with the given tfmot scheme."""
        q = self.tfmot.quantization.keras
        schemes = {
            "default_8bit": lambda: q.default_8bit.Default8BitQuantizeScheme(),
            "prune_preserve": lambda: q.collab_opts.Default8BitPrunePreserveQuantizeScheme(),
            "cluster_preserve": lambda: self.tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
                preserve_sparsity=False),
            "prune_cluster_preserve": lambda: self.tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
                preserve_sparsity=True),
        }
        # The cluster-preserving scheme refuses a frozen (trainable=False) BatchNormalization: unfreeze
        # for quantize_apply, freeze again in the QAT model.
        frozen = self._set_norm_trainable(model, True)
        annotated = self.wrapped_clone(model, q.quantize_annotate_layer)
        with q.quantize_scope():
            qat_model = q.quantize_apply(annotated, scheme=schemes[scheme_name]())
        if frozen:
            self._set_norm_trainable(qat_model, False)
        self.calibrate_activation_ranges(model, qat_model)
        epochs = int(self.ctx.params.get("qat_epochs", self.epochs))
        self.fit(qat_model, desc, epochs=epochs)
        self.params["qat"] = {"scheme": scheme_name, "annotated": list(WRAPPED), "epochs": epochs}
        return qat_model

    def calibrate_activation_ranges(self, model, qat_model) -> None:
        """Start QAT from the activation ranges post-training quantization would use.

        tfmot's activation quantizers start at [-6, 6] and follow the batches' ranges by an
        exponential moving average (decay 0.999): after a short fine-tune (tens of steps) the range
        is still mostly [-6, 6] and the int8 model loses accuracy to coarse steps (trained base, 50
        steps: test MSE +17-72 % against the parent, where plain int8 PTQ costs +2 %). So the
        ranges are first set to the float model's own output ranges on up to ``range_frames``
        fine-tuning frames (min clamped <= 0 <= max, as tfmot does)."""
        keras = self.keras
        names = [layer.name for layer in model.layers if type(layer).__name__ in WRAPPED]
        # a fresh clone: layers shared with earlier models (wrapped_clone reuses them) have several
        # graph nodes, and ``layer.output`` would be the first model's
        float_model = keras.models.clone_model(model)
        float_model.set_weights(model.get_weights())
        probe = keras.Model(float_model.inputs, [float_model.get_layer(n).output for n in names])
        x = self.x[:int(self.ctx.params.get("range_frames", 512))]
        lo = dict.fromkeys(names, 0.0)
        hi = dict.fromkeys(names, 0.0)
        for i in range(0, len(x), 64):
            outs = probe(x[i:i + 64], training=False)
            for n, out in zip(names, outs if len(names) > 1 else [outs]):
                out = np.asarray(out)
                lo[n], hi[n] = min(lo[n], float(out.min())), max(hi[n], float(out.max()))
        done = []
        for n in names:
            try:
                wrapper = qat_model.get_layer("quant_" + n)
            except ValueError:
                continue
            for v in wrapper.non_trainable_weights:
                if v.name.split("/")[-1].startswith("post_activation_min"):
                    v.assign(lo[n])
                elif v.name.split("/")[-1].startswith("post_activation_max"):
                    v.assign(hi[n])
                    done.append(n)
        self.params["activation_ranges"] = {"calibrated_on_frames": len(x), "layers": done}

    # -- conversion ------------------------------------------------------------------------------
    def convert(self, model, quantize: bool) -> None:
        """TFLite flatbuffer to ``ctx.out``; ``quantize``: Optimize.DEFAULT (dynamic range for a
        float model; int8 kernels from the fake-quant ranges for a QAT model)."""
        conv = self.tf.lite.TFLiteConverter.from_keras_model(model)
        if quantize:
            conv.optimizations = [self.tf.lite.Optimize.DEFAULT]
        self.params["optimizations"] = ["DEFAULT"] if quantize else []
        atomic_write_bytes(self.ctx.out, conv.convert())


def _kernels(model, skip=()) -> list[np.ndarray]:
    return [layer.get_weights()[0] for layer in model.layers
            if type(layer).__name__ in WRAPPED and layer.name not in skip]


def kernel_sparsity(model, skip=()) -> float:
    """Fraction of zero weights over the Conv2D/Dense kernels of a (stripped) tf_keras model, the
    layers named in ``skip`` (not pruned) left out."""
    return sparsity(_kernels(model, skip))


def max_unique_per_channel(model) -> int:
    """Largest count of distinct values in one output channel of a Conv2D/Dense kernel."""
    out = 0
    for k in _kernels(model):
        flat = k.reshape(-1, k.shape[-1])
        out = max(out, max(len(np.unique(flat[:, c])) for c in range(flat.shape[1])))
    return int(out)


def _magnitude_pruned(ctx: BuildContext, quantize: bool) -> dict[str, Any]:
    run = _Run(ctx)
    model = run.prune(run.base, float(ctx.params["initial_sparsity"]), float(ctx.params["final_sparsity"]))
    run.convert(model, quantize=quantize)
    return run.finish()


@register_method("tflite_pruned", **PRUNING)
def tflite_pruned(ctx: BuildContext) -> dict[str, Any]:
    """Magnitude pruning (PolynomialDecay 50% -> 80%), fine-tuned, stripped; float32 TFLite."""
    return _magnitude_pruned(ctx, quantize=False)


@register_method("tflite_pruned_dynamic", **PRUNING)
def tflite_pruned_dynamic(ctx: BuildContext) -> dict[str, Any]:
    """Magnitude pruning (50% -> 80%) then dynamic-range quantization (int8 weights)."""
    return _magnitude_pruned(ctx, quantize=True)


@register_method("tflite_qat", **COMMON)
def tflite_qat(ctx: BuildContext) -> dict[str, Any]:
    """Quantization-aware training of the Conv2D/Dense layers; int8 TFLite (float I/O)."""
    run = _Run(ctx)
    run.convert(run.qat(run.base, "default_8bit"), quantize=True)
    return run.finish()


@register_method("tflite_cqat", clusters=8, per_channel=True, **COMMON)
def tflite_cqat(ctx: BuildContext) -> dict[str, Any]:
    """Clustering (8 k-means++ clusters, per channel) then cluster-preserving QAT; int8 TFLite."""
    run = _Run(ctx)
    clustered = run.cluster(run.base, preserve_sparsity=False)
    run.convert(run.qat(clustered, "cluster_preserve"), quantize=True)
    return run.finish()


@register_method("tflite_pqat", target_sparsity=0.5, **COMMON)
def tflite_pqat(ctx: BuildContext) -> dict[str, Any]:
    """Pruning to 50% sparsity then sparsity-preserving QAT; int8 TFLite."""
    run = _Run(ctx)
    t = float(ctx.params["target_sparsity"])
    pruned = run.prune(run.base, t, t)
    run.convert(run.qat(pruned, "prune_preserve"), quantize=True)
    return run.finish()


@register_method("tflite_pcqat", target_sparsity=0.5, clusters=8, per_channel=True, **COMMON)
def tflite_pcqat(ctx: BuildContext) -> dict[str, Any]:
    """Pruning (50%), sparsity-preserving clustering (8 clusters), then PCQAT; int8 TFLite."""
    run = _Run(ctx)
    t = float(ctx.params["target_sparsity"])
    pruned = run.prune(run.base, t, t)
    clustered = run.cluster(pruned, preserve_sparsity=True)
    run.params["sparsity_after_clustering"] = round(kernel_sparsity(clustered, run.skip), 4)
    run.convert(run.qat(clustered, "prune_cluster_preserve"), quantize=True)
    return run.finish()
