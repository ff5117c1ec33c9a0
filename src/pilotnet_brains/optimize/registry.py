"""The optimize methods' registry: :data:`METHODS` (backend name -> :class:`Method`), filled by
:func:`register_method` in the method modules, and what a method gets (:class:`BuildContext`).

A method is a function ``fn(ctx: BuildContext) -> dict`` that writes its artifact to ``ctx.out``
(a temporary path with the right suffix) and returns the parameters it used. Everything else about
it (parent base model, data it needs, whether this machine can run it) is its backend's row in
:data:`pilotnet_brains.backends.BACKENDS`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from pilotnet_brains.backends.registry import BACKENDS, BackendSpec, get_spec
from pilotnet_brains.optimize.calibration import load_representative


class OptimizeError(RuntimeError):
    """A method that cannot run; the message names the method, the path and what to do."""


class MethodRefused(OptimizeError):
    """This machine cannot run the method (no GPU / TensorRT / TF-TRT)."""


@dataclass
class Method:
    """A registered builder: its backend's row, the function and its default parameters."""

    spec: BackendSpec
    func: Callable[[BuildContext], dict[str, Any]]
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def parent(self) -> str:
        """Base framework the method starts from: "tf_keras" or "torch"."""
        return self.spec.parent

    @property
    def needs(self) -> str:
        """"", "calibration" or "training"."""
        return self.spec.needs

    def missing(self) -> str:
        return self.spec.missing()


#: method name -> Method. Every name is also a backend name (BACKENDS).
METHODS: dict[str, Method] = {}


def register_method(name: str, **defaults: Any):
    """Decorator: register ``fn(ctx) -> params`` as the builder of backend ``name``; ``defaults`` are
    the method's parameters (overridable from :func:`pilotnet_brains.optimize.build`'s ``params``)."""
    spec = get_spec(name)

    def deco(fn):
        METHODS[name] = Method(spec, fn, dict(defaults))
        return fn

    return deco


def method_names() -> list[str]:
    """Registered methods in the backend table's order."""
    return [n for n in BACKENDS if n in METHODS] + [n for n in METHODS if n not in BACKENDS]


def get_method(name: str) -> Method:
    if name in METHODS:
        return METHODS[name]
    if name in BACKENDS:
        raise OptimizeError(f"backend {name!r} has no build method registered yet (its method needs "
                            f"{BACKENDS[name].needs or 'nothing'}); registered methods: {', '.join(method_names())}")
    raise OptimizeError(f"unknown method {name!r}; valid methods: {', '.join(method_names())}")


@dataclass
class BuildContext:
    """What a method gets: base model path, temporary output path, data source and parameters."""

    method: str
    base: str
    out: str
    data: str | None
    params: dict[str, Any]
    progress: bool = True
    notes: list[str] = field(default_factory=list)
    _calibration: np.ndarray | None = None

    def calibration(self, n: int | None = None) -> np.ndarray:
        """Representative preprocessed frames float32 (n, 66, 200, 3) from ``data`` (cached)."""
        n = int(n or self.params.get("calibration_frames", 100))
        if self._calibration is None or len(self._calibration) < n:
            self._calibration = load_representative(self.data, n, seed=int(self.params.get("seed", 0)),
                                                     progress=self.progress, prep=self.preprocessing())
            if self.data is None or str(self.data).startswith("synthetic"):
                self.notes.append("smoke build: calibrated on synthetic frames, not on driving data")
        return self._calibration[:n]

    def preprocessing(self):
        """The base model's preprocessing (its sidecar), default if it has none."""
        from pilotnet_brains.preprocess import DEFAULT, read_meta

        try:
            return read_meta(self.base).preprocessing
        except (OSError, ValueError):
            return DEFAULT
