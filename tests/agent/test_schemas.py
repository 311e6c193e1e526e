"""The published JSON Schemas (docs/schema) match the models; `takt schema export` rewrites them."""

from __future__ import annotations

from takt_cli.schema import DEFAULT_DIR, render, schemas
from takt_cli.stack import REPO


def test_schemas_are_current() -> None:
    for name, schema in schemas().items():
        assert (REPO / DEFAULT_DIR / name).read_text() == render(schema), name
