"""Options as data: a subcommand's flags are a table of :func:`option` rows, in sections (the
parser itself, or a titled group), added by :func:`add_options` in table order."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

Option = tuple[tuple[str, ...], dict[str, Any]]
Section = tuple[str | None, Sequence[Option]]


def option(*flags: str, **kwargs: Any) -> Option:
    """One row: ``add_argument``'s flags and keywords."""
    return flags, kwargs


def add_options(parser: argparse.ArgumentParser, table: Sequence[Section]) -> None:
    """Add each section's options: ``None`` to ``parser`` itself, a title to a new group."""
    for title, options in table:
        target = parser if title is None else parser.add_argument_group(title)
        for flags, kwargs in options:
            target.add_argument(*flags, **kwargs)
