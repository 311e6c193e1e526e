"""The published JSON Schemas of profiles and gateway configs match the models."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.config import GatewayConfig
from edge_agent.profile import json_schema

DOCS = Path(__file__).resolve().parents[2] / "docs/schema"


def render(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def test_schemas_are_current() -> None:
    """Regenerate with: python -c 'from tests.agent.test_schemas import write; write()'."""
    assert (DOCS / "device-profile.schema.json").read_text() == render(json_schema())
    assert (DOCS / "gateway-config.schema.json").read_text() == render(
        GatewayConfig.model_json_schema()
    )


def write() -> None:
    (DOCS / "device-profile.schema.json").write_text(render(json_schema()))
    (DOCS / "gateway-config.schema.json").write_text(render(GatewayConfig.model_json_schema()))
