"""What every report writer shares: standard JSON (NaN -> null), CSV cells, Markdown tables and PNG
files from matplotlib figures (written atomically)."""
from __future__ import annotations

import io
import json
import math
import os
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from pilotnet_brains.util import atomic_write_bytes, atomic_write_text


# ---------------------------------------------------------------------------------- JSON and CSV
def clean_json(o: Any) -> Any:
    """``o`` with NaN/inf as None and numpy scalars and arrays as Python values, so the JSON is
    standard (RFC 8259) and readable everywhere."""
    if isinstance(o, dict):
        return {k: clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean_json(v) for v in o]
    if isinstance(o, np.ndarray):
        return clean_json(o.tolist())
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    return o


def to_json(data: Any, indent: int = 2) -> str:
    """``data`` as standard JSON text (see :func:`clean_json`), with a final newline."""
    return json.dumps(clean_json(data), indent=indent) + "\n"


def csv_cell(v: Any) -> Any:
    """A CSV cell: empty for None and NaN/inf, else the value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return v


# ---------------------------------------------------------------------------------- Markdown
def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table: the header, the separator, one line per row of cells."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


# ---------------------------------------------------------------------------------- PNG
def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig, dpi: int = 110, tight: bool = True) -> bytes:
    """The figure as PNG (``tight``: cropped to what it draws, labels and legends outside the axes
    included), then closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    pyplot().close(fig)
    return buf.getvalue()


def write_png(fig, path: str, dpi: int = 110, tight: bool = True) -> str:
    """Write the figure to ``path`` atomically (see :func:`png_bytes`); returns the file name."""
    atomic_write_bytes(path, png_bytes(fig, dpi, tight))
    return os.path.basename(path)


def shown_path(path: str) -> str:
    """``path`` as reports print it: relative to the package root when inside it (the same on every
    machine), else as given."""
    from pilotnet_brains import PACKAGE_ROOT

    full = os.path.abspath(path)
    return os.path.relpath(full, PACKAGE_ROOT) if full.startswith(PACKAGE_ROOT + os.sep) else path


def save_result(out_dir: str, prefix: str, result: dict, markdown: Callable[[dict], str]) -> tuple[str, str]:
    """A benchmark's result, stamped now (``result["time"]``), written atomically as
    ``<out_dir>/<prefix>_<time>.json`` (every figure) and ``.md`` (``markdown(result)``): (the path
    without its suffix, the Markdown)."""
    result["time"] = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"{prefix}_{result['time']}")
    atomic_write_text(base + ".json", json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    atomic_write_text(base + ".md", md)
    return base, md
