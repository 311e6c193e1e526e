"""Export the JSON Schemas others write against: the wire contract, agent configs, profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter

from takt_wire import Batch
from takt_wire.batch import AnyEvent

app = typer.Typer(no_args_is_help=True)

DEFAULT_DIR = Path("docs/schema")


def schemas() -> dict[str, dict[str, object]]:
    """File name → JSON Schema: the wire contract, and the edge agent's config files."""
    from edge_agent.config import GatewayConfig
    from edge_agent.profile import json_schema as device_profile_schema

    return {
        "batch.schema.json": TypeAdapter(Batch).json_schema(),
        "event.schema.json": AnyEvent.model_json_schema(),
        "device-profile.schema.json": device_profile_schema(),
        "gateway-config.schema.json": GatewayConfig.model_json_schema(),
    }


def render(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="Folder to write the schema files into.")] = DEFAULT_DIR,
    check: Annotated[
        bool, typer.Option(help="Fail if the files differ instead of writing.")
    ] = False,
) -> None:
    """Write (or with --check, verify) docs/schema/*.schema.json."""
    stale = []
    for name, schema in schemas().items():
        path = out / name
        text = render(schema)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        typer.echo(f"wrote {path}")
    if stale:
        typer.echo(f"out of date: {', '.join(stale)}; run `takt schema export`", err=True)
        raise typer.Exit(1)
