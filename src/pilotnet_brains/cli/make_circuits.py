"""``scripts/make_circuits``: the procedural training circuits (:mod:`pilotnet_brains.circuit_design`)."""
from __future__ import annotations

import argparse
import os
from typing import Sequence

from pilotnet_brains.circuit_design import GENERATED, build_all, circuit_yaml
from pilotnet_brains.circuits import CIRCUITS_DIR, Circuit
from pilotnet_brains.util import atomic_write_text


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="make_circuits",
        description="(Re)write the procedural training circuits config/circuits/generated_<n>.yaml (seeded "
                    "random layouts at the Gazebo F1 worlds' scale: 2.5-3.3 m roads between 0.5 m walls, bends "
                    "down to about 2 m radius). The real circuits are measured data and are not written here. "
                    "Every file is validated before it is written.")
    ap.add_argument("names", nargs="*", help="circuits to write (default: all)")
    ap.add_argument("--out", default=CIRCUITS_DIR, help="output folder (default: %(default)s)")
    args = ap.parse_args(argv)
    known = set(GENERATED)
    bad = [n for n in args.names if n not in known]
    if bad:
        ap.error(f"unknown circuits {bad}; known: {sorted(known)}")
    os.makedirs(args.out, exist_ok=True)
    for name, data in build_all(args.names).items():
        path = os.path.join(args.out, name + ".yaml")
        atomic_write_text(path, circuit_yaml(data))
        c = Circuit.from_dict(data, source=path)
        print(f"{path}: {c.length:.1f} m, min radius {c.min_radius:.1f} m, {len(data['control_points'])} points")
