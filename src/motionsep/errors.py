"""The one exception type users see.

Anything raised as :class:`MotionsepError` is bad input or a refused action: the CLI prints its
message on one line and exits with code 2, without a traceback. Everything else is a bug.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class MotionsepError(Exception):
    """A problem the user can fix; the message says what it is and what to do."""


def closest(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the nearest valid choice, or a list of the valid ones."""
    choices = sorted(set(choices))
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if match:
        return f" (did you mean '{match[0]}'?)"
    return f" (valid: {', '.join(choices)})"


def refuse_existing(paths: Iterable[str | Path], overwrite: bool) -> None:
    """Existing result files are never overwritten silently: refuse the first that exists."""
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise MotionsepError(f"'{existing[0]}' already exists: choose another --out or pass --overwrite")


def refuse_nonempty(path: str | Path, remedy: str) -> None:
    """Existing results are never overwritten silently: refuse a folder that already holds files."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise MotionsepError(f"'{path}' already holds files: {remedy}")
