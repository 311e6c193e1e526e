"""Channels register themselves: the interface imports no implementation, every config
``type`` has one factory, and a second registration of a type is refused."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from kpi_service.alerts import channels
from kpi_service.alerts.channels import base, registry
from kpi_service.alerts.rules import ChannelDef


def test_interface_imports_no_implementation() -> None:
    tree = ast.parse(Path(base.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {m for m in imported if m.startswith("kpi_service.alerts.channels")}


def test_every_configurable_type_has_exactly_one_factory() -> None:
    types = set(typing.get_args(ChannelDef.model_fields["type"].annotation))
    assert set(channels.registered()) == types


def test_a_type_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'webhook' is registered twice"):
        registry.register("webhook")(object)  # type: ignore[type-var]
