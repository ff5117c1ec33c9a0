"""Offline evaluation of PilotNet artifacts: size, accuracy per circuit, latency, throughput.

For every artifact (a backend name + model path): size (MB; folders summed) and gzip size, the
sparsity recorded by pruned methods, MSE on a DeepLearningStudio-format test set per evaluation
circuit and overall (normalized units, comparable with published tables) and RMSE per output in
physical units (v m/s, w rad/s), max |output - parent output| over the test set (parent = the base
model the artifact was built from), batch-1 latency (p50/p90/p99/max) and batch-N throughput, all
measured in one process, one after the other (warm-up by time, then a minimum count AND
a minimum duration, ``perf_counter_ns``, preloaded inputs, fixed seed, threads stated).

Test set: one run folder per evaluation circuit (several allowed); a folder's name starts with
its circuit's name (``simple_circuit_run1`` -> ``simple_circuit``; see :func:`circuit_of`).

Targets of the offline table (reported, never asserted by timing): every quantized
variant's MSE within 5% of its fp32 parent's (:data:`MSE_TARGET`), dynamic-range/int8 artifacts
about 4x smaller than fp32, fastest CPU variant's batch-1 p50 <= 0.1 ms. Which backend is quantized,
pruned, QAT-trained, or has an fp32 sibling or size reference is its row in the backend table.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from pilotnet_brains.reporting import md_table, pyplot, shown_path, write_png
from pilotnet_brains.timing import measure, summary

#: Quantized variants must keep their MSE within this factor of their fp32 parent's.
MSE_TARGET = 1.05
#: Batch-1 p50 target of the fastest CPU variant (s).
LATENCY_TARGET_S = 1e-4


class EvaluationError(ValueError):
    """Inputs the evaluation cannot use; names the path and what to do."""


# -- test set -----------------------------------------------------------------------------------------

def known_circuits() -> list[str]:
    try:
        from pilotnet_brains.circuits import circuit_names

        return list(circuit_names())
    except Exception:
        return ["simple_circuit", "montreal", "montmelo", "nurburgring", "many_curves"]


def circuit_of(folder_name: str, names: Sequence[str] | None = None) -> str:
    """The circuit a run folder belongs to: the longest known circuit name its name starts with
    (case-insensitive), else the name without a trailing ``[_-]<suffix with digits>``."""
    base = os.path.basename(os.path.normpath(folder_name))
    low = base.lower()
    for name in sorted(names if names is not None else known_circuits(), key=len, reverse=True):
        if low.startswith(name.lower()):
            return name
    m = re.match(r"^(.*?)[_-]*(run)?[_-]*\d[\w-]*$", base)
    return (m.group(1) if m and m.group(1) else base) or base


@dataclass
class TestSet:
    """Preprocessed test frames with normalized labels (or none: synthetic frames) and each frame's circuit."""

    x: np.ndarray                 # float32 (N, 66, 200, 3)
    y: np.ndarray | None          # float32 (N, 2) normalized; None: frames without labels
    circuit: np.ndarray           # (N,) str
    root: str
    runs: dict[str, list[str]] = field(default_factory=dict)   # circuit -> run folders

    @property
    def circuits(self) -> list[str]:
        return list(self.runs)

    def mask(self, circuit: str) -> np.ndarray:
        return self.circuit == circuit


def load_test_set(root: str, prep=None, max_frames: int = 0, seed: int = 0, progress: bool = True,
                  cache_dir: str | None = None) -> TestSet:
    """Read a DLS-format test folder; ``max_frames`` (0 = all) subsamples evenly per circuit."""
    from pilotnet_brains.dataset import DatasetError, load_arrays, read_run, run_folders
    from pilotnet_brains.preprocess import DEFAULT

    if not root or not os.path.isdir(root):
        raise EvaluationError(f"test set folder {root} does not exist: pass --test DIR, one run folder per "
                              f"evaluation circuit (DeepLearningStudio layout: <int>.png + data.csv)")
    try:
        folders = run_folders(root)
    except DatasetError as e:
        raise EvaluationError(f"test set {root}: {e}") from None
    names = known_circuits()
    runs: dict[str, list[str]] = {}
    samples, circuits = [], []
    for folder in folders:
        name = circuit_of(os.path.relpath(folder, root).split(os.sep)[0] if folder != root else folder, names)
        try:
            run = read_run(folder)
        except DatasetError as e:
            raise EvaluationError(f"test set {root}: {e}") from None
        runs.setdefault(name, []).append(folder)
        samples.extend(run)
        circuits.extend([name] * len(run))
    circ = np.asarray(circuits)
    if max_frames and len(samples) > max_frames:
        keep: list[int] = []
        per = max(1, max_frames // len(runs))
        for name in runs:
            idx = np.flatnonzero(circ == name)
            keep.extend(idx[np.linspace(0, len(idx) - 1, min(per, len(idx))).round().astype(int)].tolist())
        keep = sorted(set(keep))
        samples = [samples[i] for i in keep]
        circ = circ[keep]
    x, y = load_arrays(samples, prep=prep or DEFAULT, cache_dir=cache_dir, progress=progress)
    return TestSet(np.asarray(x, np.float32), np.asarray(y, np.float32), circ, os.path.abspath(root), runs)


def synthetic_test_set(n: int = 32, seed: int = 0) -> TestSet:
    """``n`` synthetic preprocessed frames without labels (circuit "synthetic"): enough for speed and
    agreement with the parent model, not for accuracy."""
    from pilotnet_brains.optimize.calibration import synthetic_frames

    x = np.asarray(synthetic_frames(n, seed=seed), np.float32)
    return TestSet(x, None, np.full(n, "synthetic"), "synthetic", {"synthetic": []})


# -- measuring ----------------------------------------------------------------------------------------

def fresh_load(name: str, path: str, threads: int, models_dir: str | None = None) -> dict[str, float]:
    """Backend ``name`` in a fresh interpreter that already has numpy and OpenCV loaded (as every brain
    has): import_s (its runtime's modules), load_s (the artifact at ``path``), and after a short
    warm-up rss_mb (VmRSS) and rss_peak_mb (VmHWM; ru_maxrss would carry this process's peak across
    exec), in MB. {} when the interpreter fails."""
    import subprocess
    import sys

    code = ("import importlib, sys, time\n"
            "import pilotnet_brains.preprocess\n"
            "from pilotnet_brains.backends import get_spec, load_backend\n"
            "from pilotnet_brains.backends.registry import runtime_modules\n"
            "spec = get_spec(sys.argv[1])\n"
            "t0 = time.perf_counter()\n"
            "for m in runtime_modules(spec) + ['pilotnet_brains.backends.' + spec.impl.split(':')[0]]:\n"
            "    importlib.import_module(m)\n"
            "t1 = time.perf_counter()\n"
            "b = load_backend(sys.argv[1], sys.argv[2], threads=int(sys.argv[3]))\n"
            "t2 = time.perf_counter()\n"
            "b.warmup(3)\n"
            "st = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
            "print(t1 - t0, t2 - t1, int(st['VmRSS'].split()[0]) / 1024.0, int(st['VmHWM'].split()[0]) / 1024.0)")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if models_dir:
        env["PILOTNET_MODELS_DIR"] = models_dir
    try:
        out = subprocess.run([sys.executable, "-c", code, name, path, str(threads)], capture_output=True,
                             text=True, timeout=300, env=env)
        values = [float(v) for v in out.stdout.strip().splitlines()[-1].split()]
    except Exception:
        return {}
    return dict(zip(("import_s", "load_s", "rss_mb", "rss_peak_mb"), values))


def predict_all(backend, x: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([np.array(backend.predict(x[i:i + batch]), np.float32, copy=True)
                           for i in range(0, len(x), batch)]) if len(x) else np.zeros((0, 2), np.float32)


def accuracy(pred: np.ndarray, test: TestSet, prep) -> dict[str, dict[str, float]]:
    """Per circuit and "overall": frames, MSE (normalized, mean over both outputs), MSE per output,
    RMSE of v (m/s) and w (rad/s)."""
    out = {}
    for scope in test.circuits + ["overall"]:
        m = np.ones(len(pred), bool) if scope == "overall" else test.mask(scope)
        d = pred[m].astype(np.float64) - test.y[m]
        v_p, w_p = prep.outputs(pred[m])
        v_t, w_t = prep.outputs(test.y[m])
        out[scope] = {"frames": int(m.sum()), "mse": float(np.mean(d ** 2)),
                      "mse_v": float(np.mean(d[:, 0] ** 2)), "mse_w": float(np.mean(d[:, 1] ** 2)),
                      "rmse_v_mps": float(np.sqrt(np.mean((v_p - v_t) ** 2))),
                      "rmse_w_radps": float(np.sqrt(np.mean((w_p - w_t) ** 2)))}
    return out


# -- artifacts ----------------------------------------------------------------------------------------

@dataclass
class Artifact:
    name: str          # backend name
    path: str
    skip: str = ""     # reason it is not evaluated ("" = evaluate)


def discover(selection: Sequence[str] = (), models_dir: str | None = None) -> list[Artifact]:
    """Artifacts to evaluate. ``selection``: backend names and/or model paths (a path's backend comes
    from its sidecar's ``method``); empty = every backend of the table at its default path under
    ``models_dir`` (default: the package's models folder). Missing/unsupported ones carry a skip reason."""
    from pilotnet_brains.backends.registry import BACKENDS, build_hint
    from pilotnet_brains.preprocess import read_meta

    root = models_dir
    out: list[Artifact] = []
    items = list(selection) or list(BACKENDS)
    for item in items:
        if item in BACKENDS:
            spec = BACKENDS[item]
            path = os.path.join(root, spec.default) if root else spec.default_path
            reason = spec.missing()
            if reason:
                out.append(Artifact(item, path, f"cannot run on this machine: {reason}"))
            elif not os.path.exists(path):
                out.append(Artifact(item, path, f"not built ({shown_path(path)} missing): {build_hint(spec)}"))
            else:
                out.append(Artifact(item, path))
            continue
        if not os.path.exists(item):
            raise EvaluationError(f"{item!r} is neither a backend name nor an existing model path; backends: "
                                  f"{', '.join(BACKENDS)}")
        try:
            method = read_meta(item).method
        except (OSError, ValueError) as e:
            raise EvaluationError(f"{item}: cannot tell its backend without its metadata sidecar ({e})") from None
        if method == "train":
            method = "keras" if item.endswith((".keras", ".h5")) else method
        if method not in BACKENDS:
            raise EvaluationError(f"{item}: sidecar method {method!r} is not a backend; backends: "
                                  f"{', '.join(BACKENDS)}")
        reason = BACKENDS[method].missing()
        out.append(Artifact(method, os.path.abspath(item), f"cannot run on this machine: {reason}" if reason else ""))
    return out


def random_artifacts(names: Sequence[str], folder: str, log: Callable[[str], None] = print) -> dict[str, str]:
    """Random-weight base models (seed 0) in ``folder`` and the artifact of every backend in ``names``
    built from them at its default place under ``folder`` (int8 calibrated on 100 synthetic frames):
    {name: path}. A base model's backend (keras) gets the base model; a build that fails is logged
    and left out. Latency does not depend on the weights."""
    from pilotnet_brains.backends import get_spec
    from pilotnet_brains.models import save_random_base_models
    from pilotnet_brains.optimize import METHODS, build

    base = save_random_base_models(folder, seed=0)
    paths = {}
    for name in names:
        spec = get_spec(name)
        path = os.path.join(folder, spec.default)
        if name in METHODS:
            try:
                build(name, base=base[spec.parent or "tf_keras"], data="synthetic:100", out=path, progress=False)
            except Exception as e:
                log(f"{name}: cannot build a random-weight artifact: {e}")
                continue
        paths[name] = path
    return paths


def parent_outputs(framework: str, base_path: str, x: np.ndarray) -> np.ndarray:
    """Outputs of a base model (tf_keras file or torch state dict) on ``x``, in its own framework."""
    if framework == "tf_keras":
        from pilotnet_brains.models.tf_pilotnet import load

        model = load(base_path)
        return np.concatenate([model(x[i:i + 64], training=False).numpy() for i in range(0, len(x), 64)])
    import torch

    from pilotnet_brains.models.torch_pilotnet import load as tload

    model = tload(base_path)
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(np.ascontiguousarray(x[i:i + 64]))).numpy()
                               for i in range(0, len(x), 64)])


def find_base(artifact: Artifact, models_dir: str | None) -> tuple[str, str]:
    """(framework, base model path) an artifact derives from: the sidecar's ``extra.base`` if it still
    exists, else the table's base model under ``models_dir``; ("", "") for a base model itself."""
    from pilotnet_brains.backends.registry import BACKENDS, BASE_MODELS
    from pilotnet_brains.preprocess import read_meta

    spec = BACKENDS[artifact.name]
    if not spec.parent:
        return "", ""
    try:
        base = read_meta(artifact.path).extra.get("base", "")
    except (OSError, ValueError):
        base = ""
    if not base or not os.path.exists(base):
        from pilotnet_brains.models import models_dir as default_models_dir

        base = os.path.join(models_dir or default_models_dir(), BASE_MODELS[spec.parent])
    return spec.parent, base


# -- one artifact -------------------------------------------------------------------------------------

@dataclass
class Settings:
    threads: int = 1
    batch: int = 32                 # throughput batch size N
    min_count: int = 200
    min_seconds: float = 2.0
    warmup_seconds: float = 0.5
    latency_inputs: int = 16        # distinct preloaded batch-1 inputs, cycled
    seed: int = 0
    rounds: int = 5                 # round-robin timing rounds (side-by-side measurement)


def evaluate_artifact(art: Artifact, test: TestSet, settings: Settings, parent_cache: dict[str, Any],
                      models_dir: str | None = None, keep_open: bool = False) -> dict[str, Any]:
    """Every figure of one artifact (see the module doc; accuracy None on a test set without labels).
    ``keep_open``: skip the timing and keep the loaded backend in ``row["_backend"]`` for
    :func:`time_side_by_side` over all rows."""
    from pilotnet_brains.backends import load_backend
    from pilotnet_brains.optimize.finetune import gzip_size
    from pilotnet_brains.preprocess import DEFAULT, read_meta
    from pilotnet_brains.util import path_size, sha256_path

    try:
        meta = read_meta(art.path)
    except (OSError, ValueError):
        meta = None
    prep = meta.preprocessing if meta else DEFAULT
    params = (meta.extra.get("parameters", {}) if meta else {}) or {}
    row: dict[str, Any] = {"method": art.name, "path": art.path, "size_bytes": path_size(art.path),
                           "sha256": sha256_path(art.path),
                           "gzip_bytes": params.get("gzip_bytes") or gzip_size(art.path),
                           "sparsity": params.get("sparsity"),
                           "smoke": bool(meta and (meta.extra.get("smoke") or meta.extra.get("weights") == "random")),
                           "notes": list(meta.extra.get("notes", [])) if meta else []}
    backend = load_backend(art.name, art.path, threads=settings.threads)
    row["runtime"] = backend.runtime
    row["runtime_version"] = backend.runtime_version
    pred = predict_all(backend, test.x)
    labelled = test.y is not None
    row["accuracy"] = accuracy(pred, test, prep) if labelled else None
    framework, base = find_base(art, models_dir)
    row["smoke"] = row["smoke"] or _smoke_model(base if framework else art.path)
    if framework and os.path.exists(base):
        key = f"{framework}:{base}"
        if key not in parent_cache:
            ref = parent_outputs(framework, base, test.x)
            parent_cache[key] = {"pred": ref, "accuracy": accuracy(ref, test, prep) if labelled else None}
        ref = parent_cache[key]
        row["parent"] = {"framework": framework, "path": base,
                         "mse": ref["accuracy"]["overall"]["mse"] if labelled else None}
        row["max_abs_diff_parent"] = float(np.max(np.abs(pred - ref["pred"]))) if len(pred) else 0.0
    else:
        row["parent"] = None                 # a base model itself, or its parent file is gone
        row["max_abs_diff_parent"] = None
    if keep_open:
        row["_backend"] = backend
    else:
        time_side_by_side([row], test.x, settings, backends={art.name: backend})
        backend.close()
    return row


def time_side_by_side(rows: list[dict[str, Any]], x: np.ndarray, settings: Settings,
                      backends: dict[str, Any] | None = None, progress: bool = False) -> None:
    """Batch-1 latency and batch-N throughput of every row's backend, measured round-robin: each of
    ``settings.rounds`` rounds gives every backend its share of the minimum count and duration (after
    its own timed warm-up), so all of them see the same machine load -- the figures compare side by
    side. The same preloaded inputs (frames of ``x`` picked with a fixed seed) for all. Fills latency_s, batch_latency_s,
    throughput_fps and raw_ns (per-call ns) in place."""
    backends = dict(backends or {})
    loaded = [r.pop("_backend") if "_backend" in r else backends[r["method"]] for r in rows]
    rng = np.random.default_rng(settings.seed)
    pick = rng.choice(len(x), size=min(settings.latency_inputs, len(x)), replace=False)
    singles = [np.ascontiguousarray(x[i:i + 1]) for i in pick]
    idx = rng.choice(len(x), size=settings.batch, replace=len(x) < settings.batch)
    big = [np.ascontiguousarray(x[idx])]
    rounds = max(1, int(settings.rounds))
    times: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in rows]
    steps = [(k, i) for k in range(rounds) for i in range(len(rows))]
    if progress:
        import sys

        from tqdm import tqdm

        steps = tqdm(steps, desc="timing (round-robin)", unit="slot", file=sys.stderr)
    for k, i in steps:
        b = loaded[i]
        warm = settings.warmup_seconds if k == 0 else settings.warmup_seconds / rounds
        one, many = times[i]
        one.append(measure(b.predict, singles, -(-settings.min_count // rounds), settings.min_seconds / rounds,
                              warm))
        many.append(measure(b.predict, big, -(-max(10, settings.min_count // 10) // rounds),
                               settings.min_seconds / rounds, warm / 2))
    for r, (one, many) in zip(rows, times):
        ns1, nsb = np.concatenate(one), np.concatenate(many)
        r["latency_s"] = summary(ns1, "s")
        r["batch_latency_s"] = summary(nsb, "s")
        r["throughput_fps"] = settings.batch / r["batch_latency_s"]["p50"]
        r["raw_ns"] = {"batch1": ns1.tolist(), f"batch{settings.batch}": nsb.tolist()}
        r.update(compute_rate(r["latency_s"]["p50"], settings.threads))
    for b in loaded:
        b.close()


def compute_rate(p50_s: float, threads: int) -> dict[str, Any]:
    """What a batch-1 p50 means in compute: ``gmacs`` (PilotNet's multiply-adds per frame, from its
    layer plan, / p50, in 10^9 MAC/s) and its share of this CPU's int8 peak on ``threads`` cores
    (:func:`pilotnet_brains.hostinfo.int8_peak`): ``vnni_pct`` and ``amx_pct`` (None where the CPU
    has no such unit)."""
    from pilotnet_brains import hostinfo
    from pilotnet_brains.models import macs

    rate = macs() / p50_s if p50_s > 0 else 0.0
    peak = hostinfo.int8_peak(threads)
    return {"gmacs": rate / 1e9,
            **{f"{k}_pct": (100 * rate / peak[k] if peak[k] else None) for k in ("vnni", "amx")}}


def label(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """A row's name in a table: its backend, and its artifact's file when another row has the same
    backend (two builds of one method compared side by side)."""
    if sum(r["method"] == row["method"] for r in rows) < 2:
        return row["method"]
    return f"{row['method']} ({os.path.basename(os.path.dirname(row['path']))}/{os.path.basename(row['path'])})"


def peak_text(result: dict[str, Any]) -> str:
    """The sentence that says what the GMAC/s and % peak columns are."""
    from pilotnet_brains.models import macs

    peak = result.get("int8_peak") or {}
    parts = [f"{k.upper()} {peak[k] / 1e9:.0f} GMAC/s" for k in ("vnni", "amx") if peak.get(k)]
    return (f"GMAC/s = PilotNet's {macs() / 1e6:.1f} M multiply-adds per frame (from its layer plan) / batch-1 "
            f"p50; % VNNI / % AMX = share of this CPU's int8 peak on {peak.get('cores', '?')} core(s): "
            f"{', '.join(parts) or 'no VNNI/AMX unit'} ({peak.get('method', 'unknown')}).")

def _smoke_model(path: str) -> bool:
    """True if a (base) model's sidecar says it has random weights or is a smoke build."""
    from pilotnet_brains.preprocess import read_meta

    try:
        extra = read_meta(path).extra
    except (OSError, ValueError):
        return False
    return bool(extra.get("weights") == "random" or extra.get("smoke") or extra.get("smoke_build"))


# -- targets ------------------------------------------------------------------------------------------

def fp32_reference(name: str) -> str:
    """The fp32 row a quantized variant is compared with (its parent framework's fp32 model)."""
    from pilotnet_brains.backends.registry import BACKENDS

    return "keras" if BACKENDS[name].parent == "tf_keras" else "torchscript"


def check_targets(rows: list[dict[str, Any]]) -> None:
    """Fill each row's ``target`` (MSE within 5% of the fp32 parent, for quantized variants) with
    "ok" or "MISS: ... (why)", and ``size_ratio`` for the 4x-smaller targets. In place."""
    from pilotnet_brains.backends.registry import BACKENDS

    by_name = {r["method"]: r for r in rows}
    for r in rows:
        spec = BACKENDS[r["method"]]
        mse = r["accuracy"]["overall"]["mse"]
        if spec.size_reference in by_name:
            r["size_ratio_vs_fp32"] = by_name[spec.size_reference]["size_bytes"] / max(1, r["size_bytes"])
        if not spec.quantized:
            r["target"] = ""
            continue
        sibling = by_name.get(spec.fp32_sibling)
        ref_mse = sibling["accuracy"]["overall"]["mse"] if sibling else (r.get("parent") or {}).get("mse")
        r["target_reference"] = sibling["method"] if sibling else "parent base model"
        if ref_mse is None:
            ref = by_name.get(fp32_reference(r["method"]))
            ref_mse = ref["accuracy"]["overall"]["mse"] if ref else None
        if ref_mse is None:
            r["target"] = "n/a: no fp32 parent evaluated"
            continue
        ratio = mse / ref_mse if ref_mse > 0 else float("inf")
        r["mse_ratio_vs_parent"] = ratio
        if ratio <= MSE_TARGET:
            r["target"] = "ok"
            continue
        why = []
        if r.get("smoke"):
            why.append("smoke build / random-weight parent: its MSE says nothing about driving")
        if spec.pruned:
            why.append("pruned weights (sparsity {}) before quantizing".format(r.get("sparsity")))
        if spec.qat:
            why.append("fine-tuned weights differ from the parent's")
        if not why:
            diff = r.get("max_abs_diff_parent")
            why.append(f"quantization error: max abs Δ vs parent {float('nan') if diff is None else diff:.3g}")
        r["target"] = f"MISS: MSE {100 * (ratio - 1):+.1f}% vs {r['target_reference']} ({'; '.join(why)})"


# -- the default backend ------------------------------------------------------------------------------

def rank_default(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every evaluated artifact ranked by batch-1 p50, with its overall MSE, its fp32 parent's (a base
    model is its own) and ``ok``: MSE within :data:`MSE_TARGET` of the parent's. The default backend
    for this machine is the first ``ok`` one."""
    ranked = []
    for r in sorted(rows, key=lambda r: r["latency_s"]["p50"]):
        mse = r["accuracy"]["overall"]["mse"]
        parent = (r.get("parent") or {}).get("mse")
        ref = mse if parent is None else parent
        ratio = mse / ref if ref > 0 else float("inf")
        ranked.append({"method": r["method"], "label": label(r, rows), "path": r.get("path", ""),
                       "runtime": f"{r['runtime']} {r['runtime_version']}", "gmacs": r.get("gmacs"),
                       "vnni_pct": r.get("vnni_pct"), "amx_pct": r.get("amx_pct"),
                       "p50_s": r["latency_s"]["p50"], "p99_s": r["latency_s"]["p99"], "mse": mse,
                       "parent_mse": ref, "mse_ratio": ratio, "ok": ratio <= MSE_TARGET})
    return ranked


def default_markdown(result: dict[str, Any]) -> str:
    """The ranked table of :func:`rank_default`, the machine, and the chosen backend. The choice is
    reported, never written into the launch files: their default (the brain's) runs everywhere."""
    from pilotnet_brains import hostinfo
    from pilotnet_brains.params import BrainParams

    launch_default = BrainParams().backend

    s, ranked = result["settings"], rank_default(result["rows"])
    best = next((r for r in ranked if r["ok"]), None)
    chosen = best["label"] if best else None
    lines = [f"# Default backend for this machine ({result['run_id']})", "",
             f"Machine: {hostinfo.text(result['environment'], libraries=False)}; {s['threads']} thread(s)."
             + (" **The machine was busy (load > cores): close ranks can swap on a re-run.**"
                if hostinfo.busy(result["environment"]) else ""),
             f"Batch-1 p50/p99 of every artifact timed side by side (round-robin, {s['rounds']} rounds, "
             f"≥ {s['min_count']} calls and ≥ {s['min_seconds']} s each); MSE on `{result['test']['root']}` "
             f"({result['test']['frames']} frames) against the fp32 parent base model's; budget: MSE ≤ "
             f"{MSE_TARGET:.2f}× the parent's. " + peak_text(result), ""]
    lines += md_table(["rank", "backend", "runtime", "p50 ms", "p99 ms", "GMAC/s", "% VNNI", "% AMX", "MSE",
                       "parent MSE", "Δ MSE", "within budget"],
                      [[str(i), r["label"], r["runtime"], f"{r['p50_s'] * 1e3:.3f}", f"{r['p99_s'] * 1e3:.3f}",
                        _f(r["gmacs"], ".0f"), _f(r["vnni_pct"], ".0f"), _f(r["amx_pct"], ".1f"),
                        f"{r['mse']:.5f}", f"{r['parent_mse']:.5f}", f"{100 * (r['mse_ratio'] - 1):+.1f}%",
                        "yes" if r["ok"] else "no"] for i, r in enumerate(ranked, 1)])
    lines += ["", f"**Chosen: {chosen}** (the fastest within the budget)." if chosen else
              "**Chosen: none**: no artifact is within the budget.",
              f"The launch files keep `backend:={launch_default}` (it runs everywhere); pass "
              f"`backend:={best['method'] if best else launch_default}`"
              + (f" `model:={best['path']}`" if best and best["label"] != best["method"] else "")
              + " to drive with the choice."]
    return "\n".join(lines) + "\n"


# -- reports ------------------------------------------------------------------------------------------

CSV_COLUMNS = ["method", "scope", "frames", "mse", "mse_v", "mse_w", "rmse_v_mps", "rmse_w_radps", "size_mb",
               "gzip_mb", "sparsity", "max_abs_diff_parent", "p50_s", "p99_s", "throughput_fps", "batch",
               "threads", "target", "smoke", "path"]


def _mb(n: float | None) -> float | None:
    return None if n is None else n / 1e6


def csv_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per artifact and scope (each circuit, then "overall")."""
    s = result["settings"]
    out = []
    for r in result["rows"]:
        for scope, acc in r["accuracy"].items():
            out.append({"method": r["method"], "scope": scope, "frames": acc["frames"], "mse": acc["mse"],
                        "mse_v": acc["mse_v"], "mse_w": acc["mse_w"], "rmse_v_mps": acc["rmse_v_mps"],
                        "rmse_w_radps": acc["rmse_w_radps"], "size_mb": _mb(r["size_bytes"]),
                        "gzip_mb": _mb(r["gzip_bytes"]), "sparsity": r.get("sparsity"),
                        "max_abs_diff_parent": r.get("max_abs_diff_parent"), "p50_s": r["latency_s"]["p50"],
                        "p99_s": r["latency_s"]["p99"], "throughput_fps": r["throughput_fps"],
                        "batch": s["batch"], "threads": s["threads"], "target": r.get("target", ""),
                        "smoke": r.get("smoke", False), "path": r["path"]})
    return out


def to_csv(result: dict[str, Any]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in csv_rows(result):
        w.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    return buf.getvalue()


def _f(v: Any, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def to_markdown(result: dict[str, Any]) -> str:
    from pilotnet_brains import hostinfo
    from pilotnet_brains.backends.registry import BACKENDS

    s, env = result["settings"], result["environment"]
    rows = result["rows"]
    lines = [f"# Offline evaluation ({result['run_id']})", "",
             f"Test set: `{result['test']['root']}` — {result['test']['frames']} frames, circuits: "
             + ", ".join(f"{c} ({n})" for c, n in result["test"]["frames_per_circuit"].items()) + ".",
             f"Machine: {hostinfo.text(env, libraries=False)}; {s['threads']} thread(s) per runtime. "
             f"Latency: batch 1, warm-up {s['warmup_seconds']} s, then "
             f"≥ {s['min_count']} runs and ≥ {s['min_seconds']} s per model, timed round-robin over all models in "
             f"{s.get('rounds', 1)} rounds (same machine load for all), perf_counter_ns, {s['latency_inputs']} "
             f"preloaded test frames cycled, seed {s['seed']}. Throughput: batch N = {s['batch']}.",
             "MSE in normalized units (labels scaled to [0, 1], mean over v and w), as the published tables; "
             "v/w RMSE in m/s and rad/s. max abs Δ = largest absolute output difference from the parent base "
             "model over the test set (normalized units). " + peak_text(result), ""]
    if any(r.get("smoke") for r in rows):
        lines += ["**Smoke build**: rows marked * come from a random-weight parent or a smoke fine-tune; "
                  "their MSE is not a driving result.", ""]
    head = ["Method", "Model size (MB)", "MSE", "Inference time (s)", "p99 (s)", "GMAC/s", "% VNNI", "% AMX",
            f"Throughput (fps @{s['batch']})",
            "v RMSE (m/s)", "w RMSE (rad/s)", "Sparsity", "gzip (MB)", "max abs Δ vs parent", "Target (MSE ≤ 1.05× fp32)"]
    cells = []
    for r in rows:
        acc = r["accuracy"]["overall"]
        cells.append([
            label(r, rows) + ("*" if r.get("smoke") else ""), _f(_mb(r["size_bytes"]), ".2f"), _f(acc["mse"], ".4g"),
            _f(r["latency_s"]["p50"], ".2e"), _f(r["latency_s"]["p99"], ".2e"), _f(r.get("gmacs"), ".0f"),
            _f(r.get("vnni_pct"), ".0f"), _f(r.get("amx_pct"), ".1f"), _f(r["throughput_fps"], ".0f"),
            _f(acc["rmse_v_mps"], ".3f"), _f(acc["rmse_w_radps"], ".3f"),
            _f(r.get("sparsity"), ".1%"), _f(_mb(r["gzip_bytes"]), ".2f"),
            _f(r.get("max_abs_diff_parent"), ".3g"), r.get("target", "") or "–"])
    lines += md_table(head, cells)
    circuits = list(result["test"]["frames_per_circuit"])
    lines += ["", "## MSE per evaluation circuit (normalized units)", ""]
    lines += md_table(["Method", *circuits, "overall"],
                      [[label(r, rows), *(_f(r["accuracy"][c]["mse"], ".4g") for c in circuits),
                        _f(r["accuracy"]["overall"]["mse"], ".4g")] for r in rows])
    lines += ["", "## Targets", ""]
    sized = [r for r in rows if "size_ratio_vs_fp32" in r]
    for r in sized:
        lines.append(f"- size: {r['method']} is {r['size_ratio_vs_fp32']:.2f}× smaller than "
                     f"{BACKENDS[r['method']].size_reference} (target ≈ 4×)")
    if rows:
        fastest = min(rows, key=lambda r: r["latency_s"]["p50"])
        p50 = fastest["latency_s"]["p50"]
        lines.append(f"- fastest batch-1 p50: {fastest['method']} {p50 * 1e3:.3f} ms — target ≤ "
                     f"{LATENCY_TARGET_S * 1e3:.1f} ms: {'met' if p50 <= LATENCY_TARGET_S else 'missed'}")
        best = max(rows, key=lambda r: r["throughput_fps"])
        lines.append(f"- fastest batch runtime here: {best['runtime']} {best['runtime_version']} "
                     f"({best['method']}, {best['throughput_fps']:.0f} fps at batch {s['batch']})")
    misses = [r for r in rows if str(r.get("target", "")).startswith("MISS")]
    lines.append(f"- MSE within 5% of the fp32 parent: {sum(r.get('target') == 'ok' for r in rows)} quantized "
                 f"variant(s) ok, {len(misses)} miss" + (":" if misses else "."))
    lines += [f"  - {r['method']}: {r['target']}" for r in misses]
    if result["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {k['method']}: {k['reason']}" for k in result["skipped"]]
    versions = result.get("versions", {})
    if versions:
        lines += ["", "Runtimes: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    return "\n".join(lines) + "\n"


SPEED_HEAD = ["backend", "runtime", "p50 ms", "p90 ms", "p99 ms", "max ms", "n", "GMAC/s", "% VNNI", "% AMX",
              "size MB", "import s", "load s", "RSS MB", "max abs err", "tol"]


def speed_table(rows: list[dict[str, Any]], md: bool = False) -> str:
    """The speed mode's table (plain text, or Markdown with ``md``): batch-1 latency in ms, size, the
    compute rate and share of the int8 peak (:func:`compute_rate`), fresh interpreter's import/load/RSS,
    max |output - parent output| and the method's tolerance."""
    lines = []
    for r in rows:
        lat, fresh = r["latency_s"], r.get("fresh") or {}
        lines.append([label(r, rows), f"{r['runtime']} {r['runtime_version']}"]
                     + [f"{lat[k] * 1e3:.3f}" for k in ("p50", "p90", "p99", "max")]
                     + [str(lat["n"]), _f(r.get("gmacs"), ".0f"), _f(r.get("vnni_pct"), ".0f"),
                        _f(r.get("amx_pct"), ".1f"), f"{r['size_bytes'] / 1e6:.2f}", _f(fresh.get("import_s"), ".2f"),
                        _f(fresh.get("load_s"), ".2f"), _f(fresh.get("rss_mb"), ".0f"),
                        _f(r.get("max_abs_diff_parent"), ".1e"), _f(r.get("tolerance"), ".0e")])
    if md:
        return "\n".join(md_table(SPEED_HEAD, lines))
    widths = [max(len(line[i]) for line in [SPEED_HEAD] + lines) for i in range(len(SPEED_HEAD))]
    return "\n".join("  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
                     for line in [SPEED_HEAD] + lines)


def speed_markdown(result: dict[str, Any]) -> str:
    """The speed mode's report: host, settings, conventions, :func:`speed_table`, skipped backends."""
    from pilotnet_brains import hostinfo

    s, env = result["settings"], result["environment"]
    lines = [f"# Backend speed ({result['run_id']})", "", f"Machine: {hostinfo.text(env, libraries=False)}."
             + (" **The machine was busy (load > cores): tails and ratios are not representative.**"
                if hostinfo.busy(env) else ""),
             f"Settings: {s['threads']} thread(s), warm-up {s['warmup_seconds']} s, then ≥ {s['min_count']} batch-1 "
             f"calls and ≥ {s['min_seconds']} s per model, timed round-robin over all models in {s['rounds']} rounds "
             f"(same machine load for all), perf_counter_ns around predict() only, percentiles without clipping, "
             f"{s['latency_inputs']} preloaded frames cycled, seed {s['seed']}; models: {result['models']}.",
             "import = the runtime's import in a fresh interpreter that already has numpy and OpenCV (the "
             "preprocessing) loaded, load = the artifact's, RSS after a short warm-up there; max abs err = max "
             f"|output - parent base model output| on {result['test']['frames']} synthetic frames (normalized "
             "units), tol = the method's stated tolerance. " + peak_text(result), "", speed_table(result["rows"], md=True)]
    if result["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {k['method']}: {k['reason']}" for k in result["skipped"]]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], folder: str) -> list[str]:
    """scatter.png (batch-1 p50 vs MSE, marker area ∝ size) and bars.png (per method: size, MSE,
    p50). Written atomically; returns the file names."""
    plt = pyplot()
    rows = result["rows"]
    if not rows:
        return []
    names = [label(r, rows) for r in rows]
    size = np.array([r["size_bytes"] / 1e6 for r in rows])
    mse = np.array([r["accuracy"]["overall"]["mse"] for r in rows])
    p50 = np.array([r["latency_s"]["p50"] * 1e3 for r in rows])
    p99 = np.array([r["latency_s"]["p99"] * 1e3 for r in rows])
    files = []
    fig, ax = plt.subplots(figsize=(8, 5.5))
    sc = ax.scatter(p50, mse, s=30 + 400 * size / max(size.max(), 1e-9), c=np.log10(np.maximum(size, 1e-3)),
                    cmap="viridis", alpha=0.75, edgecolors="k")
    for n, x, y in zip(names, p50, mse):
        ax.annotate(n, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"batch-1 latency p50 (ms, {result['settings']['threads']} thread)")
    ax.set_ylabel("test MSE (normalized)")
    ax.set_title("Size (marker area, colour = log10 MB) vs latency vs MSE")
    fig.colorbar(sc, ax=ax, label="log10 size (MB)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    files.append(write_png(fig, os.path.join(folder, "scatter.png"), dpi=100, tight=False))
    fig, axes = plt.subplots(3, 1, figsize=(max(6, 0.55 * len(rows) + 2), 9), sharex=True)
    pos = np.arange(len(rows))
    axes[0].bar(pos, size, color="tab:blue")
    axes[0].set_ylabel("size (MB)")
    axes[1].bar(pos, mse, color="tab:orange")
    axes[1].set_ylabel("MSE")
    axes[2].bar(pos, p50, color="tab:green", label="p50")
    axes[2].scatter(pos, p99, color="k", marker="_", s=200, label="p99")
    axes[2].set_ylabel("batch-1 latency (ms)")
    axes[2].legend()
    axes[2].set_xticks(pos)
    axes[2].set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    for a in axes:
        a.grid(axis="y", alpha=0.3)
    fig.suptitle("PilotNet variants, offline")
    fig.tight_layout()
    files.append(write_png(fig, os.path.join(folder, "bars.png"), dpi=100, tight=False))
    return files

