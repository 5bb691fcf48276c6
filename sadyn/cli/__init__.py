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
        "progress output. Start with `sadyn demo` (about 6 minutes on a loaded 2-core machine).",
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
#: threads of every command unless ``--threads N`` or ``$OMP_NUM_THREADS`` says otherwise.
#: Measured on a 2-core machine at load 7-8 (docs/design.md, "Threads"): torch's own default
#: (one thread per core) made ``sadyn train --preset small`` 10x slower (20 s/step against 1.9),
#: ``sadyn eval`` 3.4x slower and ``sadyn analyze`` slower still; on an idle machine two threads
#: gain well under 2x. One thread keeps every README time true on a shared machine.
DEFAULT_THREADS = 1


def _threads_from(argv: list[str]) -> str | None:
    """The value of ``--threads N`` / ``--threads=N`` in ``argv`` (None if absent)."""
    value = None
    for i, token in enumerate(argv):
        if token == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif token.startswith("--threads="):
            value = token.split("=", 1)[1]
    return value


def cap_native_threads(argv: list[str]) -> int:
    """Choose the thread count of this command and cap every thread pool to it; returns it.

    ``--threads N`` wins; else ``$OMP_NUM_THREADS`` (a user's explicit choice); else
    :data:`DEFAULT_THREADS`. The BLAS / OpenMP pools of numpy and scipy (eigenproblems, QR)
    read the environment when first loaded and ``torch.set_num_threads`` does not reach them,
    so this runs before any subcommand module is imported (no effect in a process that has
    loaded numpy already); subprocesses (training jobs of ``reproduce``/``paper``/``demo``)
    inherit the environment."""
    given = _threads_from(argv)
    if given is not None and given.isdigit() and int(given) >= 1:
        for var in _NATIVE_THREAD_VARS:
            os.environ[var] = given
        return int(given)
    env = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(env) if env.isdigit() and int(env) >= 1 else DEFAULT_THREADS
    for var in _NATIVE_THREAD_VARS:
        os.environ.setdefault(var, str(threads))
    return threads


def main(argv: list[str] | None = None) -> int:
    threads = cap_native_threads(sys.argv[1:] if argv is None else [str(a) for a in argv])
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(threads)  # torch read the environment at import, maybe before us
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
