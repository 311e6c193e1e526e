"""Every deliberate error class of the house derives from TaktError (issue 14, one error root).

The classes are found by reading the source (ast), not from a list kept by hand,
so a new error class that forgets the root fails here.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from takt_common.errors import ConfigError, TaktError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    *("edge_agent", "collector", "kpi_service", "simulators", "takt_wire", "takt_cli"),
    *("takt_common", "takt_store", "bench"),
)


def error_classes() -> list[tuple[str, str]]:
    """(module, class) of every public class defined with a base named like an exception."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                    continue
                bases = [ast.unparse(base) for base in node.bases]
                if any(b.endswith(("Error", "Exception")) or b == "TaktError" for b in bases):
                    found.append((module, node.name))
    return found


def test_every_error_class_has_the_one_root() -> None:
    classes = error_classes()
    assert len(classes) >= 20, classes  # the scan does see the house's errors
    strays = []
    for module, name in classes:
        cls = getattr(importlib.import_module(module), name)
        is_error = isinstance(cls, type) and issubclass(cls, BaseException)
        if is_error and not issubclass(cls, TaktError):
            strays.append(f"{module}.{name}")
    assert strays == []


def test_errors_keep_their_builtin_base() -> None:
    from collector.lineproto import UnrepresentableError
    from edge_agent.profile import ProfileError
    from edge_agent.roster import RosterError
    from kpi_service.core.apikeys import UnknownKey

    assert issubclass(ConfigError, ValueError) and issubclass(ProfileError, ConfigError)
    assert issubclass(RosterError, ValueError) and issubclass(UnrepresentableError, ValueError)
    assert issubclass(UnknownKey, LookupError)
