"""The native_int8 kernels: the folded float network, the quantized integers (numpy reference), the C
kernels against that reference on every kernel set this CPU has, and the refusals."""
from __future__ import annotations

import os

import numpy as np
import pytest

from pilotnet_brains import native
from pilotnet_brains.models import CONV_LAYERS, DENSE_LAYERS, FLATTEN_SIZE, INPUT_SHAPE, N_OUTPUTS
from pilotnet_brains.optimize.calibration import synthetic_frames

needs_kernels = pytest.mark.skipif(bool(native.missing()), reason=f"native kernels: {native.missing()}")


def random_state(seed: int = 0) -> dict[str, np.ndarray]:
    """A PilotNetTorch state dict in numpy (He-normal weights, small biases, a non-trivial input
    BatchNorm), made without torch."""
    rng = np.random.default_rng(seed)
    s = {"input_norm.weight": rng.uniform(0.5, 2.0, 3), "input_norm.bias": rng.uniform(-0.5, 0.5, 3),
         "input_norm.running_mean": rng.uniform(0.2, 0.6, 3), "input_norm.running_var": rng.uniform(0.02, 0.1, 3)}
    c = INPUT_SHAPE[2]
    for i, (n, k, _) in enumerate(CONV_LAYERS, start=1):
        s[f"conv{i}.weight"] = rng.normal(0, np.sqrt(2 / (c * k * k)), (n, c, k, k))
        s[f"conv{i}.bias"] = rng.normal(0, 0.05, n)
        c = n
    width = FLATTEN_SIZE
    for i, units in enumerate(DENSE_LAYERS + (N_OUTPUTS,), start=1):
        key = f"fc{i}" if i <= len(DENSE_LAYERS) else "outputs"
        s[f"{key}.weight"] = rng.normal(0, np.sqrt(2 / width), (units, width))
        s[f"{key}.bias"] = rng.normal(0, 0.05, units)
        width = units
    return {k: v.astype(np.float32) for k, v in s.items()}


@pytest.fixture(scope="module")
def artifact():
    state = random_state(0)
    return state, native.quantize(state, synthetic_frames(32, seed=1), bn_eps=1e-5)


@pytest.mark.torch
def test_folded_float_network_is_the_torch_model():
    """BatchNorm folded into conv1 with the 1/255, fc1's columns reordered for NHWC: the same function."""
    import torch

    from pilotnet_brains.models.torch_pilotnet import PilotNetTorch

    state = random_state(3)
    model = PilotNetTorch().eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    x = synthetic_frames(4, seed=5)
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    got = native.float_forward(native.float_layers(state, float(model.input_norm.eps)), x * 255.0)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_quantized_network_within_the_int8_budget(artifact):
    state, art = artifact
    x = synthetic_frames(16, seed=7)
    want = native.float_forward(native.float_layers(state, 1e-5), native.input_bytes(x))
    got = native.reference(art, x)
    assert got.shape == (16, 2) and got.dtype == np.float32
    err = np.abs(got - want).max()
    # int8 changes the outputs, by a small part of their spread (this random network's outputs spread
    # over +-4; the base models' over [0, 1], where the backends' int8 tolerance is 0.05)
    assert 0 < err < 0.1 * want.std(), (err, want.std())


@needs_kernels
@pytest.mark.parametrize("kernels", native.KERNELS)
def test_kernels_compute_the_reference_integers(artifact, kernels):
    if kernels == "amx" and native.amx_missing():
        pytest.skip(native.amx_missing())
    _, art = artifact
    net = native.NativeNet(art, kernels=kernels)
    assert net.kernels == kernels
    rng = np.random.default_rng(11)
    # frames made from bytes, and arbitrary floats (rounding, and clamping below 0 and above 1)
    x = np.concatenate([synthetic_frames(6, seed=9), rng.uniform(-0.2, 1.2, (3,) + INPUT_SHAPE).astype(np.float32)])
    got = np.stack([net.forward(np.ascontiguousarray(f)).copy() for f in x])
    np.testing.assert_array_equal(got, native.reference(art, x))
    assert len(set(map(tuple, got))) == len(x)         # the output depends on the frame


@needs_kernels
def test_default_kernels_are_amx_where_the_cpu_has_it(artifact):
    assert native.NativeNet(artifact[1]).kernels == ("vnni" if native.amx_missing() else "amx")
    with pytest.raises(native.NativeError, match="unknown kernels 'avx2'"):
        native.NativeNet(artifact[1], kernels="avx2")


def test_bad_artifacts_are_refused(artifact):
    _, art = artifact
    native.check(art)
    with pytest.raises(native.NativeError, match="format"):
        native.check({**art, "format": np.array("something/else")})
    with pytest.raises(native.NativeError, match="w3 is missing"):
        native.check({k: v for k, v in art.items() if k != "w3"})
    with pytest.raises(native.NativeError, match=r"layer 5: weights \(1164, 1000\)"):
        native.check({**art, "w5": np.zeros((1164, 1000), np.int8)})
    with pytest.raises(native.NativeError, match="b0 is missing or not int32"):
        native.check({**art, "b0": art["b0"].astype(np.float32)})


@needs_kernels
def test_backend_refuses_a_corrupt_artifact(tmp_path):
    from pilotnet_brains.backends import ArtifactCorrupt, load_backend

    bad = tmp_path / "native_int8.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ArtifactCorrupt) as e:
        load_backend("native_int8", path=str(bad))
    assert str(bad) in str(e.value) and "scripts/optimize native_int8" in str(e.value)


def test_missing_says_what_the_cpu_lacks(monkeypatch):
    """A CPU without AVX-512 VNNI: the backend is refused naming the missing flags, and the tests'
    CPU methods (the offline table, the campaigns' defaults) leave it out."""
    from pilotnet_brains import hostinfo
    from pilotnet_brains.backends import Unsupported, load_backend, registry

    monkeypatch.setattr(hostinfo, "isa_flags", lambda: ["avx2", "fma", "avx512f", "avx512bw"])
    monkeypatch.setattr(hostinfo, "cpu_model", lambda: "TestCPU")
    reason = native.missing()
    assert "avx512vl" in reason and "avx512_vnni" in reason and "TestCPU" in reason
    assert "AMX-INT8" in native.amx_missing()
    with pytest.raises(Unsupported) as e:
        load_backend("native_int8", path="/nonexistent/native_int8.npz")
    assert "native_int8" in str(e.value) and "avx512_vnni" in str(e.value)
    assert "native_int8" not in registry.post_training_cpu_methods()


def test_missing_says_a_compiler_is_needed(monkeypatch):
    from pilotnet_brains import hostinfo

    monkeypatch.setattr(hostinfo, "isa_flags", lambda: list(native.NEEDED_FLAGS))
    monkeypatch.setattr(native, "_compiler", lambda: "")
    assert "gcc" in native.missing()
    with pytest.raises(native.NativeError, match="need a C compiler"):
        native.library()


@needs_kernels
def test_library_is_built_once_per_source(monkeypatch, tmp_path):
    monkeypatch.setenv("PILOTNET_NATIVE_CACHE", str(tmp_path / "cache"))
    path = native.library()
    assert os.path.dirname(path) == str(tmp_path / "cache") and path.endswith(".so")
    mtime = os.stat(path).st_mtime_ns
    assert native.library() == path and os.stat(path).st_mtime_ns == mtime
    broken = tmp_path / "broken.c"
    broken.write_text("int this_is_not_c(void) { return }\n")
    monkeypatch.setattr(native, "SOURCE", str(broken))
    with pytest.raises(native.NativeError) as e:
        native.library()
    assert "broken.c" in str(e.value) and "error" in str(e.value)
    assert os.listdir(tmp_path / "cache") == [os.path.basename(path)]      # no half-built file left
    # a cache folder that cannot be written says so and what to set
    monkeypatch.setattr(native, "SOURCE", str(tmp_path / "broken.c"))
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("PILOTNET_NATIVE_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(native.NativeError, match="PILOTNET_NATIVE_CACHE"):
        native.library()


def test_aligned_copies_sit_on_64_bytes():
    for n in (1, 10, 1000, 100_000):
        a = np.arange(n, dtype=np.int32)
        out = native.aligned(a, extra=16)
        assert out.ctypes.data % 64 == 0 and out.dtype == np.uint8 and out.nbytes == a.nbytes + 16
        np.testing.assert_array_equal(out[:a.nbytes].view(np.int32), a)
        assert not out[a.nbytes:].any()


@pytest.mark.torch
def test_method_refuses_a_model_with_other_input_scaling(tmp_path):
    """The kernels read the frame's bytes: a base model normalized with a mean/std cannot be built."""
    from pilotnet_brains.models import save_random_base_models
    from pilotnet_brains.optimize import OptimizeError, build
    from pilotnet_brains.preprocess import Preprocessing, read_meta, write_meta

    base = save_random_base_models(str(tmp_path), seed=0, frameworks=("torch",))["torch"]
    meta = read_meta(base)
    meta.preprocessing = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    write_meta(base, meta)
    out = tmp_path / "build" / "native_int8.npz"
    with pytest.raises(OptimizeError, match=r"mean \[0.5, 0.5, 0.5\]"):
        build("native_int8", base=base, data="synthetic:8", out=str(out), progress=False)
    assert not out.exists()


@needs_kernels
def test_brain_hands_the_resized_bytes_to_the_kernels(artifact, tmp_path):
    """The policy resizes the camera frame straight into the kernels' input buffer (no float frame)
    and gets exactly the outputs of the float path, frame after frame."""
    from pilotnet_brains.backends import load_backend
    from pilotnet_brains.brain import PilotNetPolicy
    from pilotnet_brains.preprocess import DEFAULT, Preprocessing

    path = tmp_path / "native_int8.npz"
    np.savez(path, **artifact[1])
    backend = load_backend("native_int8", path=str(path))
    policy = PilotNetPolicy(backend, DEFAULT, "native_int8")
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(3):
        img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        x = policy.preprocess(img)
        assert x.dtype == np.uint8 and x.shape == (1,) + INPUT_SHAPE
        assert x[0].ctypes.data == backend.byte_input()[0].ctypes.data      # the kernels' own buffer
        np.testing.assert_array_equal(x[0], DEFAULT.resize(img))
        got = policy.predict(x).copy()
        np.testing.assert_array_equal(got, backend.predict(DEFAULT.image(img)[None]))
        seen.add(tuple(got[0]))
    assert len(seen) == 3
    # a copy of the bytes (as benchmark_brain keeps them) gives the same; bad arrays are refused
    np.testing.assert_array_equal(policy.predict(x.copy()), got)
    with pytest.raises(ValueError, match="uint8 frames"):
        backend.predict_bytes(x[0])
    # a model normalized with a mean/std gets the float frame
    other = PilotNetPolicy(backend, Preprocessing(mean=(0.5, 0.5, 0.5)), "native_int8")
    assert other.preprocess(img).dtype == np.float32


@needs_kernels
def test_calls_from_several_threads_do_not_mix(artifact):
    """The kernels' buffers are shared: concurrent calls take turns and each gets its own frame's output."""
    import threading

    _, art = artifact
    net = native.NativeNet(art)
    x = synthetic_frames(4, seed=21)
    want = native.reference(art, x)
    errors = []

    def work(i):
        for _ in range(200):
            if not np.array_equal(net.forward(np.ascontiguousarray(x[i])), want[i]):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
