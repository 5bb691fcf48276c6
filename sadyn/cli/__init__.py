"""The ``sadyn`` command.

Each subcommand lives in its own module ``sadyn.cli.<name>`` exposing
``register(subparsers) -> None``, which adds its parser and sets ``func=run``. The flag
convention (hyphenated flags with underscored aliases, comma lists, ``--quiet``) is in
:mod:`sadyn.cli._args`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from sadyn.cli._args import Parser, one_line_warnings
from sadyn.errors import SadynError

SUBCOMMANDS = ("data", "train", "eval", "analyze", "reproduce", "report", "demo", "paper")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="sadyn",
        description="Dynamics of looped self-attention (Jacobians, Lyapunov "
        "exponents, test-time scaling) on Sudoku.",
        epilog="Flags are hyphenated (--batch-size); the underscored spelling (--batch_size) "
        "is accepted too. Lists are comma-separated (--steps 16,32,64). --quiet turns off "
        "progress output. Start with `sadyn demo` (under 5 minutes).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"sadyn.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sadyn.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


_NATIVE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cap_native_threads(argv: list[str]) -> None:
    """``--threads N`` also caps the BLAS / OpenMP threads of numpy and scipy (eigenproblems,
    QR), which ``torch.set_num_threads`` does not reach. They read the environment when first
    loaded, so this runs before any subcommand module is imported (no effect in a process that
    has loaded numpy already). ``sadyn demo`` defaults to one thread: on a loaded 2-core machine
    two BLAS threads per process oversubscribe the cores and run many times slower."""
    value, explicit = None, False
    for i, token in enumerate(argv):
        if token == "--threads" and i + 1 < len(argv):
            value, explicit = argv[i + 1], True
        elif token.startswith("--threads="):
            value, explicit = token.split("=", 1)[1], True
    if value is None and argv[:1] == ["demo"]:
        value = "1"
    if value is None or not value.isdigit() or int(value) < 1:
        return
    for var in _NATIVE_THREAD_VARS:
        if explicit:
            os.environ[var] = value
        else:
            os.environ.setdefault(var, value)


def main(argv: list[str] | None = None) -> int:
    cap_native_threads(sys.argv[1:] if argv is None else [str(a) for a in argv])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with one_line_warnings():
            return int(args.func(args) or 0)
    except SadynError as exc:
        print(f"sadyn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sadyn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (| head): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
