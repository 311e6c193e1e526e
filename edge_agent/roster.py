"""The roster (badge -> worker id) read and checked as strictly as the rest of the config.

A roster is personal data maintained by hand, often by HR rather than by whoever
runs the gateway, so a mistake in it is likely. It is checked where it is read:
``check-config``, agent start (a clear error naming file and line, no traceback)
and every reload (the previous roster is kept). A badge mapped to nothing would
otherwise credit units to a worker called "None", and a worker id the wire
contract refuses would make every event of that worker die inside the agent.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError

from takt_common.errors import TaktError
from takt_wire import UNATTRIBUTED
from takt_wire.events import Name


class RosterError(TaktError, ValueError):
    """The roster file is wrong; the message names the file and, where known, the line."""


_worker_id: TypeAdapter[str] = TypeAdapter(Name)


def load_roster(path: Path | None) -> dict[str, str]:
    """badge -> worker id, from ``badges:`` in a roster YAML; RosterError when anything is off."""
    if path is None:
        return {}
    try:
        text = path.read_text()
    except OSError as err:
        raise RosterError(f"{path}: cannot read the roster: {err}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        # Where the broken construct starts (e.g. an unclosed '['), else where it broke.
        mark = getattr(err, "context_mark", None) or getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise RosterError(f"{where}: not valid YAML: {problem}") from None
    data = data or {}
    if not isinstance(data, dict) or set(data) - {"badges"}:
        raise RosterError(f"{path}: a roster is a mapping with the one field 'badges'")
    badges = data.get("badges") or {}
    if not isinstance(badges, dict):
        raise RosterError(f"{path}: field 'badges' must map badge ids to worker ids")
    lines = _badge_lines(root)
    roster: dict[str, str] = {}
    for badge, worker in badges.items():
        where = f"{path}:{lines[str(badge)]}" if str(badge) in lines else str(path)
        if badge is None or str(badge) == "":
            raise RosterError(f"{where}: a badge id is empty")
        if worker is None or isinstance(worker, dict | list | bool):
            raise RosterError(f"{where}: badge {badge!r} has no worker id")
        worker_id = str(worker)
        try:
            _worker_id.validate_python(worker_id)
        except ValidationError:
            raise RosterError(
                f"{where}: badge {badge!r}: worker id {worker_id!r} is not valid "
                "(1-64 characters: letters, digits, '_', '.', ':', '-'; first a letter or digit)"
            ) from None
        if worker_id == UNATTRIBUTED:
            raise RosterError(f"{where}: badge {badge!r}: '{UNATTRIBUTED}' is not a worker")
        roster[str(badge)] = worker_id
    return roster


def _badge_lines(root: yaml.Node | None) -> dict[str, int]:
    """Line (1-based) of each badge key, for error messages."""
    if not isinstance(root, yaml.MappingNode):
        return {}
    for key, value in root.value:
        if getattr(key, "value", None) == "badges" and isinstance(value, yaml.MappingNode):
            return {str(k.value): k.start_mark.line + 1 for k, _v in value.value}
    return {}
