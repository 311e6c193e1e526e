"""The ``takt`` command: one entry point, one sub-command per component.

Each component owns its sub-command in ``<package>/cli.py`` (a typer app named
``app``); this module only mounts them. When the command line names a component,
only that one is imported: ``takt agent run`` on a gateway does not load the KPI
service, its database layer or the simulators (measured: 95 MB resident for all,
against the agent's own ~42 MB).
"""

from __future__ import annotations

import importlib
import sys

import typer

from takt_cli import schema

app = typer.Typer(
    name="takt",
    help="Takt: objective shop-floor KPIs measured from line sensors.",
    no_args_is_help=True,
    add_completion=False,
)

COMPONENTS: dict[str, tuple[str, str]] = {
    "agent": ("edge_agent.cli", "Edge agent: read line devices, publish canonical events."),
    "collector": ("collector.cli", "Collector: validate events and write them to InfluxDB."),
    "kpi": ("kpi_service.cli", "KPI service: HR/supervisor API, alerts, board."),
    "sim": ("simulators.cli", "Simulators: a scenario-driven shop floor with a ground truth."),
    "demo": ("takt_cli.demo", "Run the whole stack on a simulated line."),
}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"takt {version('takt')}")
        except PackageNotFoundError:
            typer.echo("takt (not installed as a package: version unknown)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Takt: objective shop-floor KPIs measured from line sensors."""


def _not_built(name: str, help_text: str) -> typer.Typer:
    stub = typer.Typer(help=f"{help_text} (not built yet)", no_args_is_help=False)

    @stub.callback(invoke_without_command=True)
    def _missing() -> None:
        typer.echo(f"takt {name}: this component is not built yet.", err=True)
        raise typer.Exit(2)

    return stub


def _mount(argv: list[str]) -> None:
    named = next((a for a in argv if not a.startswith("-")), None)
    chosen = [named] if named in COMPONENTS else list(COMPONENTS)
    for name in chosen:
        module_name, help_text = COMPONENTS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            app.add_typer(_not_built(name, help_text), name=name)
            continue
        app.add_typer(module.app, name=name, help=help_text)
    app.add_typer(schema.app, name="schema", help="Wire-contract JSON Schemas for other producers.")


_mount(sys.argv[1:])

if __name__ == "__main__":
    app()
