"""``--help`` for every executable: one argparse formatter for the tools in ``scripts/`` (description
kept as written, defaults shown, plain text), and one handler for the ROS nodes, which print their
``~params`` and exit before a node is started."""
from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from typing import Any, Callable, Sequence

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|ref):`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str) -> str:
    """Docstring markup to plain text: ``x`` -> x, :func:`a.b.c` -> a.b.c (~a.b.c -> c)."""
    def role(m: re.Match) -> str:
        target = m.group(1)
        return target.rsplit(".", 1)[-1] if m.group(0).split("`", 1)[1].startswith("~") else target

    return _LITERAL.sub(r"\1", _ROLE.sub(role, text))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description and epilog as written (examples keep their lines), each option's default
    appended to its help, docstring markup removed."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default == "" or default == argparse.SUPPRESS
                or not action.option_strings
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})" if text else f"default: {shown}"

    def format_help(self) -> str:
        return plain(super().format_help())


def node_help(main: Callable, *params: Any, argv: Sequence[str] | None = None) -> None:
    """For a ROS node's ``main``: when the command line asks for ``-h``/``--help``, print how to run
    the node (``main``'s docstring) and its ``~params`` (the fields of the ``params`` dataclasses or
    instances, :func:`pilotnet_brains.params.params_help`) and exit 0, before any node is started (so
    ``rosrun pilotnet_brains f1_sim --help`` never takes a name on a running master)."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if ":=" not in a]
    if "-h" not in args and "--help" not in args:
        return
    from pilotnet_brains.params import params_help

    prog = os.path.basename(sys.argv[0]) or "node"
    text = inspect.cleandoc(main.__doc__ or "") + ("\n\n" + params_help(*params) if params else "")
    sys.stdout.write(f"usage: rosrun pilotnet_brains {prog} [_param:=value ...] [name:=remapped ...]\n\n"
                     + plain(text) + "\n")
    sys.stdout.flush()
    raise SystemExit(0)
