"""PilotNet int8 on the package's own CPU kernels (AMX-INT8 or AVX-512 VNNI), batch 1, one thread.

The general runtimes spend most of a PilotNet call around the arithmetic: conv1 has 3 input
channels, fc1's weights stream through the cache, layouts are converted between layers. These
kernels run the network as it is: uint8 NHWC activations from the camera frame's own bytes to the
last hidden layer, int8 weights, one pass per layer without a layout change.

The quantized network (the ``native_int8`` artifact, an ``.npz``; :func:`quantize` builds it):

- input: the frame's uint8 bytes, q = rint(x * 255) of the preprocessed float frame (exact for
  frames made from uint8 images). The input BatchNorm is folded into conv1 (VALID padding, so the
  fold is exact), together with the 1/255.
- every convolution and dense layer l: int8 weights ``w{l}`` (symmetric, one scale per output
  channel), int32 bias ``b{l}`` and float32 multiplier ``m{l}``; a hidden layer's output is
  ``clip(rint(float32(acc + b) * m), 0, 255)`` as uint8 (ReLU included, zero point 0), the output
  layer's is ``float32(acc + b) * m`` (normalized v, w).
- convolutions: ``w{l}`` is (n, c, k, k) as torch has it; fc1's columns are in the NHWC flatten
  order of conv5's output (x, channel) instead of torch's (channel, x).
- activation scales from the largest value of each ReLU output over the calibration frames.

:func:`reference` computes the same integers in numpy (the kernels' test oracle);
:class:`NativeNet` runs them through the C kernels (``pilotnet_vnni.c``), compiled with gcc at first
use into a cache folder (:func:`library`).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
import threading
from typing import Mapping

import numpy as np

from pilotnet_brains.models import CONV_LAYERS, DENSE_LAYERS, INPUT_SHAPE, N_OUTPUTS, conv_shapes

FORMAT = "pilotnet_native_int8/1"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pilotnet_vnni.c")
#: gcc flags: the kernels use AVX-512 F/BW/VL and VNNI, and AMX-INT8 for the convolutions on CPUs
#: that have it; each is called only on CPUs with its flags.
CFLAGS = ("-O3", "-shared", "-fPIC", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mamx-tile",
          "-mamx-int8")
#: /proc/cpuinfo flags the kernels need.
NEEDED_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni")
N_LAYERS = len(CONV_LAYERS) + len(DENSE_LAYERS) + 1


class NativeError(RuntimeError):
    """The kernels cannot run here or the artifact is not one of theirs; the message says why."""


def missing() -> str:
    """"" when this machine can run the kernels, else what it lacks (CPU flags, a C compiler)."""
    from pilotnet_brains.hostinfo import cpu_model, isa_flags

    have = set(isa_flags())
    lacking = [f for f in NEEDED_FLAGS if f not in have]
    if lacking:
        return (f"a CPU with AVX-512 VNNI ({', '.join(NEEDED_FLAGS)}; e.g. Intel Xeon 2nd generation and "
                f"later, AMD Zen 4); this {cpu_model()} lacks {', '.join(lacking)}")
    if not _compiler():
        return "a C compiler to build the kernels (gcc: sudo apt-get install gcc libc6-dev; make setup does)"
    return ""


def _compiler() -> str:
    from shutil import which

    return os.environ.get("CC") or which("gcc") or which("cc") or ""


def cache_dir() -> str:
    """Where the compiled kernels go: ``$PILOTNET_NATIVE_CACHE``, else ``$XDG_CACHE_HOME`` (or
    ~/.cache) /pilotnet_brains/native."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("PILOTNET_NATIVE_CACHE") or os.path.join(root, "pilotnet_brains", "native")


def library() -> str:
    """Path of the compiled kernels, built on first use (keyed by the source, compiler and flags;
    built into a temporary file and renamed, so concurrent first uses are safe)."""
    reason = missing()
    if reason:
        raise NativeError(f"the native kernels need {reason}")
    cc = _compiler()
    with open(SOURCE, "rb") as f:
        key = hashlib.sha256(f.read() + cc.encode() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    folder = cache_dir()
    path = os.path.join(folder, f"pilotnet_vnni-{key}.so")
    if os.path.exists(path):
        return path
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
    except OSError as e:
        raise NativeError(f"cannot write the compiled kernels to {folder} ({e.strerror}); point "
                          f"PILOTNET_NATIVE_CACHE at a writable folder") from e
    os.close(fd)
    try:
        r = subprocess.run([cc, *CFLAGS, "-o", tmp, SOURCE], capture_output=True, text=True)
        if r.returncode:
            raise NativeError(f"compiling {SOURCE} with {cc} failed:\n{r.stderr.strip()}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# -- quantization ----------------------------------------------------------------------------------

def _conv(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """VALID convolution, NHWC x (N, H, W, C) with torch-layout w (n, C, k, k), no bias, in x's dtype."""
    n_img, h, wd, c = x.shape
    n, _, k, _ = w.shape
    ho, wo = (h - k) // stride + 1, (wd - k) // stride + 1
    cols = np.empty((n_img, ho, wo, k, k, c), x.dtype)
    for r in range(k):
        for q in range(k):
            cols[:, :, :, r, q, :] = x[:, r:r + stride * (ho - 1) + 1:stride, q:q + stride * (wo - 1) + 1:stride, :]
    wm = w.transpose(2, 3, 1, 0).reshape(k * k * c, n).astype(x.dtype)
    return (cols.reshape(n_img * ho * wo, k * k * c) @ wm).reshape(n_img, ho, wo, n)


def float_layers(state: Mapping[str, np.ndarray], bn_eps: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) float64 of each layer for input q = frame bytes (0..255): the input BatchNorm
    (epsilon ``bn_eps``) and the 1/255 folded into conv1, fc1's columns in NHWC flatten order."""
    s = {k: np.asarray(v, np.float64) for k, v in state.items()}
    a = s["input_norm.weight"] / np.sqrt(s["input_norm.running_var"] + bn_eps)
    b = s["input_norm.bias"] - s["input_norm.running_mean"] * a
    w1 = s["conv1.weight"]
    layers = [(w1 * a[None, :, None, None] / 255.0, s["conv1.bias"] + (w1 * b[None, :, None, None]).sum(axis=(1, 2, 3)))]
    layers += [(s[f"conv{i}.weight"], s[f"conv{i}.bias"]) for i in range(2, len(CONV_LAYERS) + 1)]
    fc1 = s["fc1.weight"]
    c_last = CONV_LAYERS[-1][0]
    fc1 = fc1.reshape(len(fc1), c_last, -1).transpose(0, 2, 1).reshape(len(fc1), -1)
    layers.append((fc1, s["fc1.bias"]))
    layers += [(s[f"fc{i}.weight"], s[f"fc{i}.bias"]) for i in range(2, len(DENSE_LAYERS) + 1)]
    layers.append((s["outputs.weight"], s["outputs.bias"]))
    return layers


def float_forward(layers, q: np.ndarray, maxima: list[float] | None = None) -> np.ndarray:
    """The folded float network on frame bytes q (N, 66, 200, 3); ``maxima`` gets each ReLU
    output's largest value."""
    x = np.asarray(q, np.float64)
    for i, (w, b) in enumerate(layers):
        if i < len(CONV_LAYERS):
            x = _conv(x, w, CONV_LAYERS[i][2]) + b
        else:
            x = x.reshape(len(x), -1) @ w.T + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
            if maxima is not None:
                maxima.append(float(x.max()))
    return x


def quantize(state: Mapping[str, np.ndarray], frames: np.ndarray, bn_eps: float,
             batch: int = 20) -> dict[str, np.ndarray]:
    """The artifact's arrays from a PilotNetTorch state dict (as numpy; its input BatchNorm's
    epsilon ``bn_eps``) and calibration frames float32 (N, 66, 200, 3) in [0, 1] (see the module's
    docstring)."""
    layers = float_layers(state, bn_eps)
    maxima = np.zeros(N_LAYERS - 1)
    for i in range(0, len(frames), batch):
        m: list[float] = []
        float_forward(layers, input_bytes(frames[i:i + batch]), m)
        maxima = np.maximum(maxima, m)
    act = np.concatenate([[1.0], np.where(maxima > 0, maxima, 1.0) / 255.0])   # input: the bytes themselves
    out: dict[str, np.ndarray] = {"format": np.array(FORMAT), "act_scale": act}
    for i, (w, b) in enumerate(layers):
        n = len(w)
        ws = np.abs(w.reshape(n, -1)).max(axis=1) / 127.0
        ws[ws == 0] = 1.0
        shape = (-1,) + (1,) * (w.ndim - 1)
        out[f"w{i}"] = np.clip(np.rint(w / ws.reshape(shape)), -127, 127).astype(np.int8)
        out[f"b{i}"] = np.rint(b / (act[i] * ws)).astype(np.int32)
        out_scale = act[i + 1] if i < N_LAYERS - 1 else 1.0
        out[f"m{i}"] = (act[i] * ws / out_scale).astype(np.float32)
    return out


def check(art: Mapping[str, np.ndarray]) -> None:
    """Raise NativeError unless ``art`` holds a complete artifact of this format with PilotNet's shapes."""
    if str(art.get("format", "")) != FORMAT:
        raise NativeError(f"not a {FORMAT} artifact (format {str(art.get('format', 'missing'))!r})")
    convs = conv_shapes()
    width = int(np.prod(convs[-1][1]))          # conv5's output, flattened
    for i in range(N_LAYERS):
        for key, dtype in ((f"w{i}", np.int8), (f"b{i}", np.int32), (f"m{i}", np.float32)):
            if key not in art or np.asarray(art[key]).dtype != dtype:
                raise NativeError(f"array {key} is missing or not {np.dtype(dtype).name}")
        w = np.asarray(art[f"w{i}"])
        if i < len(CONV_LAYERS):
            n, k, _ = CONV_LAYERS[i]
            want = (n, convs[i][0][2], k, k)
        else:
            units = (DENSE_LAYERS + (N_OUTPUTS,))[i - len(CONV_LAYERS)]
            want = (units, width)
            width = units
        if w.shape != want or art[f"b{i}"].shape != (want[0],) or art[f"m{i}"].shape != (want[0],):
            raise NativeError(f"layer {i}: weights {w.shape}, expected {want} (PilotNet, 66x200x3 input)")


def input_bytes(x: np.ndarray) -> np.ndarray:
    """float32 frames in [0, 1] -> uint8 rint(x * 255), clipped (what the kernels compute)."""
    return np.clip(np.rint(np.asarray(x, np.float32) * np.float32(255)), 0, 255).astype(np.uint8)


def reference(art: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The quantized network in numpy integers: float32 (N, 66, 200, 3) -> float32 (N, 2), the same
    numbers the kernels give."""
    a = input_bytes(x).astype(np.int64)
    for i in range(N_LAYERS):
        w = np.asarray(art[f"w{i}"]).astype(np.int64)
        if i < len(CONV_LAYERS):
            acc = _conv(a, w, CONV_LAYERS[i][2])
        else:
            acc = a.reshape(len(a), -1) @ w.T
        f = (acc.astype(np.int32) + art[f"b{i}"]).astype(np.float32) * art[f"m{i}"]
        if i == N_LAYERS - 1:
            return f.astype(np.float32)
        a = np.clip(np.rint(f), 0, 255).astype(np.int64)
    raise AssertionError("unreachable")


# -- the kernels ------------------------------------------------------------------------------------

class _Conv(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("h", "w", "c", "k", "s", "n", "ho", "wo", "groups", "nv")] + [
        ("w8", ctypes.c_void_p), ("bias", ctypes.c_void_p), ("mult", ctypes.c_void_p), ("w_amx", ctypes.c_void_p),
        ("chunks", ctypes.c_int32)]


class _Dense(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in ("k", "n", "nv")] + [
        ("w8", ctypes.c_void_p), ("bias", ctypes.c_void_p), ("mult", ctypes.c_void_p)]


def aligned(a: np.ndarray, extra: int = 0) -> np.ndarray:
    """A copy of ``a`` (flattened) at a 64-byte aligned address, followed by ``extra`` zero bytes: tile
    and vector loads of unaligned weights or activations split cache lines (AMX's convolutions took
    2.4x longer on 16-byte aligned weights)."""
    a = np.ascontiguousarray(a).reshape(-1)
    raw = np.zeros(a.nbytes + extra + 64, np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start:start + a.nbytes + extra]
    out[:a.nbytes] = a.view(np.uint8)
    return out


def _padded(values: np.ndarray, length: int, dtype) -> np.ndarray:
    out = np.zeros(length, dtype)
    out[:len(values)] = values
    return out


#: Kernel sets: the convolutions on AMX-INT8 tiles or on AVX-512 VNNI (dense layers always on VNNI).
KERNELS = ("amx", "vnni")


def amx_missing() -> str:
    """"" when this CPU has AMX-INT8 (the tile state is asked of Linux when the kernels load)."""
    from pilotnet_brains.hostinfo import cpu_model, isa_flags

    if {"amx_tile", "amx_int8"} <= set(isa_flags()):
        return ""
    return f"a CPU with AMX-INT8 (Intel Xeon 4th generation and later); this {cpu_model()} has none"


class NativeNet:
    """The artifact's network on the C kernels: ``forward(x)`` float32 (66, 200, 3) -> float32 (2,).

    ``kernels``: "amx" (the convolutions on AMX tiles, the dense layers on VNNI; refused without
    AMX-INT8), "vnni", or None: AMX where the CPU has it, else VNNI. :attr:`kernels` says which run."""

    def __init__(self, art: Mapping[str, np.ndarray], kernels: str | None = None):
        check(art)
        if kernels not in (None,) + KERNELS:
            raise NativeError(f"unknown kernels {kernels!r}; choose one of {', '.join(KERNELS)} (or none: the "
                              f"fastest this CPU has)")
        self._lib = ctypes.CDLL(library())
        self._lib.pb_forward.restype = ctypes.c_int
        self._lib.pb_forward.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                         ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                         ctypes.c_int, ctypes.c_void_p]
        if kernels is None:
            kernels = "vnni" if amx_missing() else "amx"
        if kernels == "amx":
            if amx_missing():
                raise NativeError(f"the AMX kernels need {amx_missing()}")
            if self._lib.pb_amx_enable() != 0:
                raise NativeError("Linux refused this process the AMX tile state (arch_prctl "
                                  "ARCH_REQ_XCOMP_PERM; kernel 5.16 or later is needed)")
        self.kernels = kernels
        keep: list[np.ndarray] = []          # the packed arrays the structures point into

        def ptr(a: np.ndarray) -> int:
            a = aligned(a)
            keep.append(a)
            return a.ctypes.data

        nconv, ndense = len(CONV_LAYERS), N_LAYERS - len(CONV_LAYERS)
        self._convs = (_Conv * nconv)()
        self._dense = (_Dense * ndense)()
        sizes = [int(np.prod(INPUT_SHAPE))]
        for i, ((n, k, s), ((h, wd, c), (ho, wo, _))) in enumerate(zip(CONV_LAYERS, conv_shapes())):
            w = np.asarray(art[f"w{i}"])
            seg, nv = k * c, -(-n // 16)
            groups = -(-seg // 4)
            # [row r][group g][channel][4]: the k*c bytes of input row r, 4 per vpdpbusd lane
            packed = np.zeros((k, groups * 4, nv * 16), np.int8)
            packed[:, :seg, :n] = w.transpose(2, 3, 1, 0).reshape(k, seg, n)
            vnni = np.ascontiguousarray(packed.reshape(k, groups, 4, nv * 16).transpose(0, 1, 3, 2))
            # AMX B tiles: [row r][64-byte chunk][16-channel tile][quad][channel][4]
            chunks = -(-seg // 64)
            amx = np.zeros((k, chunks * 64, nv * 16), np.int8)
            amx[:, :seg, :n] = packed[:, :seg, :n]
            amx = np.ascontiguousarray(amx.reshape(k, chunks, 16, 4, nv, 16).transpose(0, 1, 4, 2, 5, 3))
            self._convs[i] = _Conv(h, wd, c, k, s, n, ho, wo, groups, nv, ptr(vnni),
                                   ptr(_padded(art[f"b{i}"], nv * 16, np.int32)),
                                   ptr(_padded(art[f"m{i}"], nv * 16, np.float32)),
                                   ptr(amx), chunks)
            sizes.append(ho * wo * n)
        for j in range(ndense):
            w = np.asarray(art[f"w{nconv + j}"])
            n, k0 = w.shape
            k, nv = -(-k0 // 4) * 4, -(-n // 16)
            packed = np.zeros((nv * 16, k), np.int8)
            packed[:n, :k0] = w
            # [vector v][group g][16 outputs][4]: each 16-output vector's weights contiguous
            packed = np.ascontiguousarray(packed.reshape(nv, 16, k // 4, 4).transpose(0, 2, 1, 3))
            self._dense[j] = _Dense(k, n, nv, ptr(packed), ptr(_padded(art[f"b{nconv + j}"], nv * 16, np.int32)),
                                    ptr(_padded(art[f"m{nconv + j}"], nv * 16, np.float32)))
            sizes.append(n)
        slack = int(self._lib.pb_slack())           # the kernels read a little past a buffer's end
        self._bufs = [aligned(np.zeros(size, np.uint8), slack) for size in sizes[:-1]]
        self._buf_ptrs = (ctypes.c_void_p * len(self._bufs))(*[b.ctypes.data for b in self._bufs])
        self._keep = keep
        self._out = np.zeros(N_OUTPUTS, np.float32)
        self._n_in = int(np.prod(INPUT_SHAPE))
        self._input = self._bufs[0][:self._n_in].reshape(INPUT_SHAPE)   # the kernels' input, as a frame
        self._args = (ctypes.addressof(self._convs), nconv, ctypes.addressof(self._dense), ndense,
                      ctypes.addressof(self._buf_ptrs), self._out.ctypes.data, int(kernels == "amx"))
        #: the steps :meth:`forward` times with ``timed``: (name, kind) of the input quantization and each layer
        self.steps = [("input", "Quantize")] + [
            (f"conv{i + 1}", "Conv (AMX-INT8)" if kernels == "amx" else "Conv (VNNI)")
            for i in range(nconv)] + [(f"fc{j + 1}" if j < ndense - 1 else "outputs", "FullyConnected (VNNI)")
                                      for j in range(ndense)]
        self.step_ns = np.zeros(len(self.steps), np.int64)
        self._lock = threading.Lock()

    def forward(self, x: np.ndarray, timed: bool = False) -> np.ndarray:
        """One frame, float32 C-contiguous (66, 200, 3) in [0, 1] -> float32 (2,). Calls from several
        threads run one at a time.
        ``timed``: each step's time (ns) in :attr:`step_ns`, in the order of :attr:`steps`."""
        return self._run(x.ctypes.data, timed)

    def input_bytes_view(self) -> np.ndarray:
        """The kernels' input: a uint8 (66, 200, 3) view that :meth:`forward_bytes` reads in place."""
        return self._input

    def forward_bytes(self, q: np.ndarray, timed: bool = False) -> np.ndarray:
        """One frame's bytes, uint8 (66, 200, 3) -> float32 (2,): the frame is the network's input as
        it is (copied in unless ``q`` is :meth:`input_bytes_view`)."""
        if q.ctypes.data != self._input.ctypes.data:
            self._input[...] = q
        return self._run(None, timed)

    def _run(self, x_ptr, timed: bool) -> np.ndarray:
        convs, nconv, dense, ndense, bufs, out, amx = self._args
        ns = self.step_ns.ctypes.data if timed else None
        with self._lock:     # one call at a time: the calls share the activation buffers
            if self._lib.pb_forward(x_ptr, self._n_in, convs, nconv, dense, ndense, bufs, out, amx, ns):
                raise NativeError("the kernels refused a layer (unsupported channel count)")
            return self._out.copy()
