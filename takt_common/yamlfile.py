"""A YAML file read with the line of every key, so each error can point into the file.

PyYAML's node tree keeps a mark (line, column) for every node; the data is
built from the same tree, so a pydantic error location (``("influx", "url")``,
``("stations", 0, "profile")``) maps back to the line an operator has to edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from takt_common.errors import ConfigError, Problem

Loc = tuple[str, ...]
"""A location with every part as text (``("stations", "0", "profile")``)."""


def as_loc(loc: Sequence[object]) -> Loc:
    return tuple(str(part) for part in loc)


@dataclass
class Document:
    """The parsed content of one YAML file and the line (1-based) of each location in it."""

    file: str
    data: dict[str, Any]
    lines: dict[Loc, int] = field(default_factory=dict)

    def has(self, loc: Sequence[object]) -> bool:
        return as_loc(loc) in self.lines

    def line_of(self, loc: Sequence[object]) -> int | None:
        """The line of ``loc``, else of its nearest ancestor that the file has (None: none)."""
        parts = as_loc(loc)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), None)

    def problem(self, loc: Sequence[object], message: str) -> Problem:
        """A problem at ``loc`` of this file, with its line."""
        field = ".".join(as_loc(loc)) or "(root)"
        return Problem(message, field=field, file=self.file, line=self.line_of(loc))

    def move(self, old: Loc, new: Loc) -> None:
        """Re-home the lines under ``old`` to ``new`` (after a deprecated key was renamed)."""
        for loc in [loc for loc in self.lines if loc[: len(old)] == old]:
            self.lines[new + loc[len(old) :]] = self.lines.pop(loc)


def _index(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = (*loc, str(key.value))
            lines[here] = key.start_mark.line + 1
            _index(value, here, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            here = (*loc, str(i))
            lines[here] = item.start_mark.line + 1
            _index(item, here, lines)


def read_yaml(path: Path, *, what: str = "the file") -> Document:
    """Read a YAML mapping; a ConfigError names the file and, for a syntax error, the line."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {what}: {err}", file=name) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError([Problem(f"not valid YAML: {problem}", file=name, line=line)]) from None
    finally:
        loader.dispose()
    if data is None:
        return Document(name, {})
    if not isinstance(data, dict) or node is None:
        raise ConfigError([Problem(f"{what} must be a mapping of fields", file=name, line=1)])
    lines: dict[Loc, int] = {(): node.start_mark.line + 1}
    _index(node, (), lines)
    return Document(name, data, lines)
