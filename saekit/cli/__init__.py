"""The ``saekit`` command (also ``python -m saekit``): one subcommand per pipeline stage.

Each subcommand lives in a module of this package with a ``register(subparsers)`` function
that adds its parser and sets ``handler``; the handlers call the same functions as the
notebooks.
"""

from __future__ import annotations

import argparse
import importlib
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
    parser.add_argument("--debug", action="store_true",
                        help="print the Python traceback of an unexpected error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"saekit.cli.{name}").register(subparsers)
    return parser


def positive_int(text: str) -> int:
    """The argparse type of every count option: an integer of at least 1, checked at parse time,
    before any model loads."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def set_threads(threads: int) -> None:
    """Give torch ``threads`` CPU threads (a ``--threads`` option, a `positive_int`)."""
    import torch

    torch.set_num_threads(threads)


def load_model_and_task(args: argparse.Namespace):
    """The model (``--model``, ``--device``) and its task (``--task``, ``--n-pairs``) of a command."""
    from saekit.models import load_model
    from saekit.tasks import make_task

    model = load_model(args.model, device=args.device)
    return model, make_task(args.task, model, n_pairs=args.n_pairs)


def ground_truth_or_none(args: argparse.Namespace, without: str, required: bool = False):
    """The ground-truth heads of ``--model`` and ``--task``; where there are none, a note on stderr
    saying what the output goes ``without`` (or the error, when ``required``)."""
    from saekit.tasks.ground_truth import ground_truth_heads

    try:
        return ground_truth_heads(args.model, args.task)
    except SaekitError as err:
        if required:
            raise
        print(f"saekit: no ground truth, so {without}: {err}", file=sys.stderr)
        return None


def print_json(obj: object) -> None:
    """Print one JSON object on stdout, the machine-readable output of every ``--json`` flag.

    NaN and infinity (a collapsed SAE's metrics, say) are printed as ``null``, never as bare
    ``NaN``, which is not JSON.
    """
    from saekit._io import dumps_json

    print(dumps_json(obj), end="")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors end in one line on stderr, never a traceback.

    A `SaekitError` (a wrong input) prints its message and exits with status 2, as do
    argparse's usage errors (a count below 1, say, checked before anything loads); any
    other exception is a bug or an environment problem: one line naming it and status 1, with
    the traceback under ``--debug``. Ctrl-C exits with status 130.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # argparse's usage error (status 2) or --help (0)
        return int(exit.code or 0)
    try:
        return args.handler(args) or 0
    except SaekitError as err:
        print(f"saekit: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("saekit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(f"saekit: unexpected error: {type(err).__name__}: {_one_line(err)} "
              f"(rerun with saekit --debug ... for the traceback)", file=sys.stderr)
        return 1


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
