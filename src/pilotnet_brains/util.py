"""Small shared helpers: atomic file writes, hashing, free ports, processes by command line."""
from __future__ import annotations

import hashlib
import os
import random
import socket
import tempfile
from typing import Collection


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)   # mkstemp makes 0600; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


#: Files stored next to an artifact file and part of it, by the artifact's suffix: an OpenVINO IR
#: is ``model.xml`` (the graph) + ``model.bin`` (the weights).
COMPANION_SUFFIXES = {".xml": (".bin",)}


def companions(path: str) -> list[str]:
    """The files that belong to the artifact file ``path`` besides itself (see
    :data:`COMPANION_SUFFIXES`), whether they exist or not."""
    stem, suffix = os.path.splitext(path)
    return [stem + s for s in COMPANION_SUFFIXES.get(suffix, ())]


def sha256_path(path: str) -> str:
    """sha256 of a file (with its :func:`companions`), or of a directory's files (names and
    contents, sorted)."""
    h = hashlib.sha256()
    if os.path.isdir(path):
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                h.update(os.path.relpath(full, path).encode())
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
    else:
        for name in [path] + [c for c in companions(path) if os.path.exists(c)]:
            with open(name, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def path_size(path: str) -> int:
    """Bytes of a file (with its :func:`companions`), or of all files under a directory."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return sum(os.path.getsize(p) for p in [path] + companions(path) if os.path.exists(p))


def yaml_names(folder: str) -> list[str]:
    """Names of the ``<name>.yaml`` files in ``folder`` (sorted; none if it does not exist)."""
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml")) if os.path.isdir(folder) else []


def resolve_yaml(name_or_path: str, folder: str, kind: str, error: type) -> str:
    """A name (``montreal`` -> ``<folder>/montreal.yaml``) or a path to a .yaml file -> absolute path.

    ``kind`` names the thing in the messages ("circuit", "campaign"); ``error`` is the exception raised."""
    candidate = os.path.expanduser(str(name_or_path))
    if candidate.endswith((".yaml", ".yml")) or os.sep in candidate:
        if not os.path.isfile(candidate):
            raise error(f"{candidate}: {kind} file not found")
        return os.path.abspath(candidate)
    path = os.path.join(folder, candidate + ".yaml")
    if not os.path.isfile(path):
        raise error(f"unknown {kind} {candidate!r}: no {path}; known: "
                    f"{', '.join(yaml_names(folder)) or '(none)'}; or give a path to a .yaml file")
    return path


#: Used when the kernel's ephemeral port range cannot be read (Linux's default).
DEFAULT_EPHEMERAL_PORTS = (32768, 60999)


def ephemeral_ports() -> tuple[int, int]:
    """The range the kernel draws from when a socket binds port 0 (first, last)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first, last = (int(v) for v in f.read().split())
        return first, last
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_PORTS


def free_port(taken: Collection[int] = ()) -> int:
    """A TCP port free on 127.0.0.1 now, for a ROS master, drawn at random below the ephemeral range
    and not in ``taken``.

    Not a port the kernel gave out for port 0 and took back: the kernel hands such a port to the next
    socket that binds port 0, and every ROS node binds port 0 for its XML-RPC and TCPROS servers, so
    with other runs beside it a node's server could take the port before the master does (roslaunch
    then finds a node where it expects a master: 'method "hasParam" is not supported'). Ports below
    the ephemeral range are only ever taken by name. RuntimeError when none is free."""
    first = ephemeral_ports()[0]
    low = 20000 if first > 22000 else 1024      # above Ray's default worker ports (10002-19999)
    rng = random.SystemRandom()
    for _ in range(2000):
        port = rng.randrange(low, max(first, low + 1))
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 in {low}-{first - 1} (below the ephemeral range)")


def processes_naming(marker: str) -> list[int]:
    """pids of the processes whose command line contains ``marker``, this process excepted (Linux
    /proc). A zombie, or a process exiting, has an empty command line, so it is never among them."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        out.append(int(name))
            except OSError:
                continue
    return out
