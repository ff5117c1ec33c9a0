"""The setup (tools/bootstrap.sh, tools/debian-packages.txt, tools/paths.sh) on its own terms: every
command the package or its README calls comes from a Debian package the setup installs, so a tool
installed by hand on a developer's machine cannot hide a missing install step."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.ros

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Commands of ROS and its tooling the package may call; those found in the files below are checked.
KNOWN_COMMANDS = ("roscore", "roslaunch", "rosrun", "rospack", "rostest", "rosbag", "catkin_make", "catkin_find",
                  "rosnode", "rostopic", "rosparam", "rosservice", "rosmsg", "ign", "Xvfb", "xvfb-run")
#: The ones a user types from the README: they must be among those found (the scan itself works).
REQUIRED = {"roscore", "roslaunch", "rosrun", "rospack", "rostest", "rosbag", "catkin_make", "ign"}


def _text_files():
    yield os.path.join(ROOT, "README.md")
    yield os.path.join(ROOT, "Makefile")
    for top in ("tools", "src", "test", "scripts", "brains", "launch", ".ci", "docs"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d not in ("__pycache__", "results")]
            for name in filenames:
                if name.endswith((".png", ".pyc", ".tflite", ".pt", ".keras", ".onnx")):
                    continue
                path = os.path.join(dirpath, name)
                if path != os.path.abspath(__file__):   # this file names them all
                    yield path


def commands_called() -> set[str]:
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, KNOWN_COMMANDS)) + r")(?![\w.-])")
    found = set()
    for path in _text_files():
        with open(path, errors="replace") as f:
            found.update(pattern.findall(f.read()))
    return found


def setup_packages() -> list[str]:
    with open(os.path.join(ROOT, "tools", "debian-packages.txt")) as f:
        return [line.split()[0] for line in f if line.strip() and not line.lstrip().startswith("#")]


def _installed() -> dict[str, tuple[str, str]]:
    """Installed package -> (Depends + Pre-Depends, Provides)."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Depends}, ${Pre-Depends}\t${Provides}\n"],
                         capture_output=True, text=True, check=True).stdout
    pkgs = {}
    for line in out.splitlines():
        name, status, depends, provides = line.split("\t")
        if status.endswith(" installed"):
            pkgs[name] = (depends, provides)
    return pkgs


def dependency_closure(roots: list[str]) -> set[str]:
    """The installed packages ``roots`` pull in through Depends/Pre-Depends (virtual packages resolved
    through Provides; an alternative "a | b" counts every installed branch)."""
    pkgs = _installed()
    providers: dict[str, set[str]] = {}
    for name, (_, provides) in pkgs.items():
        providers.setdefault(name, set()).add(name)
        for p in filter(None, (x.split("(")[0].strip() for x in provides.split(","))):
            providers.setdefault(p, set()).add(name)
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        for real in providers.get(name, ()):
            if real in seen:
                continue
            seen.add(real)
            for group in pkgs[real][0].split(","):
                for alt in group.split("|"):
                    dep = alt.split("(")[0].strip().split(":")[0]
                    if dep:
                        todo.append(dep)
    return seen


def owning_package(path: str) -> str | None:
    for candidate in dict.fromkeys((path, os.path.realpath(path))):
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.split(":")[0].strip()
    return None


def test_every_command_called_comes_from_a_package_the_setup_installs():
    called = commands_called()
    assert REQUIRED <= called, f"the scan misses commands the README uses: {sorted(REQUIRED - called)}"
    wanted = setup_packages()
    closure = dependency_closure(wanted)
    problems = []
    for cmd in sorted(called):
        path = shutil.which(cmd)
        if path is None:
            problems.append(f"{cmd}: not installed (add its Debian package to tools/debian-packages.txt)")
            continue
        pkg = owning_package(path)
        if pkg is None:
            problems.append(f"{cmd}: {path} belongs to no Debian package")
        elif pkg not in closure:
            problems.append(f"{cmd}: {path} comes from {pkg}, which tools/debian-packages.txt does not install "
                            f"(installed by hand?): add {pkg} to the list")
    assert not problems, "\n".join(problems)


def test_workspace_path_has_no_hidden_folder():
    """rosbash's completion (``roslaunch pilotnet_brains <TAB>``) skips every path with a hidden folder."""
    ws = subprocess.run(["bash", "-c", f"source {ROOT}/tools/paths.sh && printf %s \"$PNB_WS\""],
                        capture_output=True, text=True, check=True, env={**os.environ, "PILOTNET_WS": ""}).stdout
    assert ws and not any(part.startswith(".") for part in ws.split(os.sep)), ws


def test_roslaunch_completion_offers_the_launch_files():
    """``roslaunch pilotnet_brains <TAB>`` through rosbash's own completion function."""
    script = ("source tools/env.sh && source /usr/share/bash-completion/completions/rosbash && "
              'COMP_WORDS=(roslaunch pilotnet_brains ""); COMP_CWORD=2; _roscomplete_launch; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert {"simple_circuit.launch", "montreal.launch", "circuit.launch"} <= set(out.stdout.split()), out
