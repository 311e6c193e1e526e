"""The one root of every error Takt raises on purpose, and the one configuration error.

A caller that wants "any Takt failure, not a bug" catches ``TaktError``; each
component derives its own errors from it (and from the matching builtin, so
existing ``except ValueError`` sites keep working).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class TaktError(Exception):
    """Root of the project's deliberate errors."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration: where (file, line, field) and what.

    ``line`` is 1-based and only set where the YAML file gives one (a value that
    came from the environment or a default has none); ``field`` is the dotted path
    (``influx.url``, ``stations.0.profile``), empty for the file as a whole;
    ``file`` is ``"environment"`` for a value that came from an environment variable.
    """

    message: str
    field: str = ""
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        return ": ".join(part for part in (where, self.field, self.message) if part)


class ConfigError(TaktError, ValueError):
    """A configuration that cannot be used: every problem found, each with file, line, field.

    Services report all problems of a file at once (an operator fixes them in one
    round, not one per restart), in file and line order; ``file``, ``line`` and
    ``field`` are the first problem's, for callers that want one.
    """

    def __init__(self, problems: Iterable[Problem] | str, *, file: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems, file=file)]
        ordered = sorted(problems, key=lambda p: (p.file or "", p.line or 0))
        self.problems: tuple[Problem, ...] = tuple(ordered) or (Problem("invalid", file=file),)
        first = self.problems[0]
        self.file, self.line, self.field = first.file, first.line, first.field
        super().__init__("\n".join(str(p) for p in self.problems))

    def report(self) -> str:
        """One ``config error: ...`` line per problem (what the command-line tools print)."""
        return "\n".join(f"config error: {p}" for p in self.problems)
