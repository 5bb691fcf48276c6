"""The command line's one convention, shared by every subcommand.

- Flags are hyphenated (``--batch-size``, ``--max-minutes``, ``--model.relation-bias-init``).
  The underscored spelling of any flag (``--batch_size``) is accepted as an alias, so saved
  command lines keep working: :class:`Parser` rewrites it before parsing.
- Lists are one comma-separated argument: ``--steps 16,32,64``, ``--probes jacobian,lyapunov``.
- ``--quiet`` (alias ``--no-progress``) turns off progress output; results are still printed.
- Every option has a help text (a test checks it).

Progress itself is :func:`sadyn.progress.progress`: a bar on a terminal, plain periodic lines
with rate and ETA otherwise.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

#: attribute on an argparse action naming option strings accepted but not shown in --help
_HIDDEN = "sadyn_hidden_aliases"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option once (hidden aliases such as ``--no-progress`` left out)."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, _HIDDEN, ())
        if not hidden:
            return super()._format_action_invocation(action)
        shown = [s for s in action.option_strings if s not in hidden]
        saved = action.option_strings
        action.option_strings = shown
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = saved


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that accepts ``--under_scored`` spellings of ``--hyphenated`` flags.

    Subparsers made from it (``add_subparsers().add_parser``) are of this class too, and use
    :class:`HelpFormatter` unless told otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def normalize(self, args: Sequence[str]) -> list[str]:
        """``args`` with each unknown ``--a_b[=v]`` replaced by a known ``--a-b[=v]``."""
        out = []
        for i, token in enumerate(args):
            if token == "--":
                out.extend(args[i:])
                break
            if token.startswith("--") and "_" in token:
                name, eq, value = token.partition("=")
                alias = name.replace("_", "-")
                if name not in self._option_string_actions and alias in self._option_string_actions:
                    token = alias + eq + value
            out.append(token)
        return out

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is None:
            args = sys.argv[1:]
        return super().parse_known_args(self.normalize(list(args)), namespace)


def hide_aliases(action: argparse.Action, *aliases: str) -> argparse.Action:
    """Accept ``aliases`` for ``action`` without listing them in --help."""
    setattr(action, _HIDDEN, frozenset(aliases))
    return action


def add_quiet(parser: argparse.ArgumentParser) -> argparse.Action:
    """``--quiet`` / ``-q`` (alias ``--no-progress``): no progress bars or lines."""
    action = parser.add_argument(
        "--quiet",
        "-q",
        "--no-progress",
        dest="quiet",
        action="store_true",
        help="no progress output (bars on a terminal, periodic lines otherwise); results are "
        "still printed",
    )
    return hide_aliases(action, "--no-progress")


def add_threads(parser: argparse.ArgumentParser) -> argparse.Action:
    return parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default 1, or $OMP_NUM_THREADS if set: on a shared machine more threads "
        "oversubscribe the cores and run several times slower)",
    )


def int_list(text: str, *, minimum: int = 1) -> list[int]:
    """``"16,32,64"`` -> ``[16, 32, 64]`` (argparse type: one comma-separated argument)."""
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 16,32,64, got {text!r}"
        ) from exc
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    if min(values) < minimum:
        raise argparse.ArgumentTypeError(f"expected integers >= {minimum}, got {text!r}")
    return values


def int_list_from(minimum: int) -> Callable[[str], list[int]]:
    """An :func:`int_list` argparse type with another lower bound (e.g. 0 for loop steps)."""

    def parse(text: str) -> list[int]:
        return int_list(text, minimum=minimum)

    parse.__name__ = "int_list"
    return parse


def choice_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type for a comma-separated subset of ``choices`` (order kept, no repeats)."""

    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(choices)}; got {text!r}"
            )
        return list(dict.fromkeys(values))

    parse.__name__ = "list"
    return parse


def _format_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    return f"sadyn: warning: {message}\n"


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Within the block, warnings print as one line ``sadyn: warning: ...`` (no category, file
    or Python source line): for the CLI. Recording (``pytest.warns``) is unaffected."""
    saved = warnings.formatwarning
    warnings.formatwarning = _format_warning  # type: ignore[assignment]
    try:
        yield
    finally:
        warnings.formatwarning = saved


__all__ = [
    "HelpFormatter",
    "Parser",
    "add_quiet",
    "add_threads",
    "choice_list",
    "hide_aliases",
    "int_list",
    "int_list_from",
    "one_line_warnings",
]
