"""The ``sadyn`` command.

Each subcommand lives in its own module ``sadyn.cli.<name>`` exposing
``register(subparsers) -> None``, which adds its parser and sets ``func=run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sadyn.errors import SadynError

SUBCOMMANDS = ("data", "train", "eval", "analyze", "reproduce", "report", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sadyn",
        description="Dynamics of looped self-attention (Jacobians, Lyapunov "
        "exponents, test-time scaling) on Sudoku.",
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SadynError as exc:
        print(f"sadyn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sadyn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
