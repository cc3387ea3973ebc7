"""The ``saekit`` command (also ``python -m saekit``): one subcommand per pipeline stage.

Each subcommand lives in a module of this package with a ``register(subparsers)`` function
that adds its parser and sets ``handler``; the handlers call the same functions as the
notebooks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from saekit.errors import SaekitError

#: Modules of this package that define subcommands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = ("models", "discover", "diagnose", "validate", "zoo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saekit",
        description="Find and validate circuits with sparse autoencoders on attention heads.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"saekit.cli.{name}").register(subparsers)
    return parser


def set_threads(threads: int) -> None:
    """Give torch ``threads`` CPU threads (a ``--threads`` option), refusing fewer than one."""
    import torch

    if threads < 1:
        raise SaekitError(f"--threads must be at least 1, not {threads}.")
    torch.set_num_threads(threads)


def print_json(obj: object) -> None:
    """Print one JSON object on stdout, the machine-readable output of every ``--json`` flag."""
    print(json.dumps(obj, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; a :class:`SaekitError` prints its message and exits with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except SaekitError as err:
        print(f"saekit: error: {err}", file=sys.stderr)
        return 2
