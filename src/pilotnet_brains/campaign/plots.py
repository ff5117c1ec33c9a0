"""The campaign report's plots: trajectories per circuit, inference time and brain frequency bars,
deviation vs inference time."""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from pilotnet_brains.campaign.aggregate import TARGET_MAE_M
from pilotnet_brains.circuits import load_circuit
from pilotnet_brains.reporting import png_bytes, pyplot


def read_track(folder: str) -> dict[str, np.ndarray] | None:
    """x, y (m) and lap of a run's track.csv (None when there is none)."""
    path = os.path.join(folder, "track.csv")
    if not os.path.exists(path):
        return None
    try:
        a = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError:
        return None
    if a.size == 0:
        return {"x": np.zeros(0), "y": np.zeros(0), "lap": np.zeros(0)}
    return {"lap": a[:, 0], "x": a[:, 2], "y": a[:, 3]}


#: Widest campaign plot (inches at the reports' 110 dpi): readable at page width.
MAX_PLOT_WIDTH = 11.0


def method_colors(methods: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One distinct colour per method, the same in every plot of a report: tab10 up to 10 methods,
    else hues evenly spaced around the circle, neighbours alternating bright and dark."""
    import colorsys

    import matplotlib

    if len(methods) <= 10:
        return {m: tuple(matplotlib.colormaps["tab10"](k)[:3]) for k, m in enumerate(methods)}
    n = len(methods)
    return {m: colorsys.hsv_to_rgb(k / n, 0.9 if k % 2 == 0 else 1.0, 0.95 if k % 2 == 0 else 0.55)
            for k, m in enumerate(methods)}


def _legend_outside(ax, title: str | None = None) -> None:
    """The legend right of the axes (over the plot it hides data and labels)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title=title,
                  ncol=1 if len(labels) <= 24 else 2, frameon=False)


def plot_trajectories(circuit_arg: str, runs: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG: the road and every method's driven path (first repetition of each start) overlaid."""
    return png_bytes(trajectories_figure(circuit_arg, runs))


def trajectories_figure(circuit_arg: str, runs: Sequence[Mapping[str, Any]]):
    plt = pyplot()
    c = load_circuit(circuit_arg)
    fig, ax = plt.subplots(figsize=(9, 7))
    s = np.linspace(0.0, c.length, max(200, int(c.length / 0.5)), endpoint=False)
    p, h = c.point_at(s), c.heading_at(s)
    n = np.stack([-np.sin(h), np.cos(h)], axis=1)
    for side in (1.0, -1.0):
        e = p + side * c.road_width / 2.0 * n
        ax.plot(np.r_[e[:, 0], e[:1, 0]], np.r_[e[:, 1], e[:1, 1]], color="0.6", lw=0.7)
    ax.plot(np.r_[p[:, 0], p[:1, 0]], np.r_[p[:, 1], p[:1, 1]], color="red", lw=0.6, ls="--", label="centerline")
    palette = method_colors(list(dict.fromkeys(r["method"] for r in runs)))
    for r in runs:
        if r["repetition"] != 1:
            continue
        tr = read_track(r["folder"])
        if tr is None or not len(tr["x"]):
            continue
        color = palette[r["method"]]
        first = r["start_index"] == min(x["start_index"] for x in runs if x["method"] == r["method"])
        ax.plot(tr["x"], tr["y"], lw=1.0, color=color, alpha=0.85, label=r["method"] if first else None)
        ax.plot(tr["x"][0], tr["y"][0], "o", ms=5, color=color, mec="black")
        if not all(lap.get("completed") for lap in r["laps"]):
            ax.plot(tr["x"][-1], tr["y"][-1], "x", ms=9, mew=2, color=color)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(f"{c.name}: trajectories (o start, x DNF)")
    _legend_outside(ax)
    return fig


def plot_bars(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG: mean inference time (ms) and brain frequency (it/s wall) per method, one bar per circuit."""
    return png_bytes(bars_figure(rows))


def bars_figure(rows: Sequence[Mapping[str, Any]]):
    """Horizontal bars, methods down the side (their names never overlap), two panels side by side."""
    plt = pyplot()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    circuits = list(dict.fromkeys(r["circuit"] for r in rows))
    height = min(12.0, 1.5 + 0.12 * len(methods) * max(1, len(circuits)) + 0.1 * len(methods))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(MAX_PLOT_WIDTH - 1, max(3.5, height)), sharey=True)
    width = 0.8 / max(1, len(circuits))
    x = np.arange(len(methods))
    for j, circuit in enumerate(circuits):
        by = {r["method"]: r for r in rows if r["circuit"] == circuit}
        inf = [1e3 * (by[m]["inference_time_mean"]["mean"] or np.nan) if m in by else np.nan for m in methods]
        inf_e = [1e3 * (by[m]["inference_time_mean"]["spread"] or 0.0) if m in by else 0.0 for m in methods]
        fr = [(by[m]["brain_frequency_wall"]["mean"] or np.nan) if m in by else np.nan for m in methods]
        fr_e = [(by[m]["brain_frequency_wall"]["spread"] or 0.0) if m in by else 0.0 for m in methods]
        a1.barh(x + j * width, inf, width, xerr=inf_e, label=circuit)
        a2.barh(x + j * width, fr, width, xerr=fr_e, label=circuit)
    a1.set_xlabel("mean inference time (ms)")
    a2.set_xlabel("brain frequency (it/s wall)")
    a1.set_yticks(x + width * (len(circuits) - 1) / 2)
    a1.set_yticklabels(methods, fontsize=8)
    a1.invert_yaxis()
    a2.legend(fontsize=8, loc="lower right")
    for a in (a1, a2):
        a.grid(axis="x", alpha=0.3)
    fig.tight_layout(w_pad=3.0)
    return fig


def plot_scatter(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG: position deviation MAE (m) vs mean inference time (ms), one point per circuit x method."""
    return png_bytes(scatter_figure(rows))


def scatter_figure(rows: Sequence[Mapping[str, Any]]):
    """Colour = method, marker = circuit, both named in the legend beside the plot (labels written at
    the points overlap where methods cluster)."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = "osD^v<>"
    circuits = list(dict.fromkeys(r["circuit"] for r in rows))
    palette = method_colors(list(dict.fromkeys(r["method"] for r in rows)))
    for j, circuit in enumerate(circuits):
        for r in rows:
            if r["circuit"] != circuit or r["deviation_mae"]["mean"] is None or r["inference_time_mean"]["mean"] is None:
                continue
            ax.scatter([1e3 * r["inference_time_mean"]["mean"]], [r["deviation_mae"]["mean"]], s=36,
                       marker=markers[j % len(markers)], color=palette[r["method"]], edgecolors="black", linewidths=0.4)
    ax.axhline(TARGET_MAE_M, color="red", lw=0.8, ls="--")
    handles = [Line2D([], [], ls="", marker="o", color=c, mec="black", mew=0.4, label=m) for m, c in palette.items()]
    handles += [Line2D([], [], ls="", marker=markers[j % len(markers)], color="0.5", label=c)
                for j, c in enumerate(circuits)]
    handles.append(Line2D([], [], color="red", lw=0.8, ls="--", label=f"target MAE {TARGET_MAE_M} m"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
              ncol=1 if len(handles) <= 26 else 2)
    ax.set_xlabel("mean inference time (ms)")
    ax.set_ylabel("position deviation MAE (m)")
    ax.grid(alpha=0.3)
    return fig

