"""``takt kpi``: run the service, manage API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from kpi_service.core.config import ConfigError, load_settings

app = typer.Typer(no_args_is_help=True)
apikey = typer.Typer(no_args_is_help=True, help="API keys (stored hashed; shown once).")
app.add_typer(apikey, name="apikey")


@app.command()
def run(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the KPI API with uvicorn (settings from TAKT_KPI_* and TAKT_KPI_CONFIG_FILE)."""
    import uvicorn

    from kpi_service.main import create_app

    try:
        application = create_app(load_settings())
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    uvicorn.run(application, host=host, port=port)


@apikey.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who the key is for (unique).")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: hr:read, supervisor, admin.")],
    lines: Annotated[
        str | None, typer.Option(help="Comma-separated lines (supervisors); omit for all.")
    ] = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from kpi_service.core.apikeys import KeyStore

    try:
        settings = load_settings()
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    store = KeyStore(settings.keys_db, settings.secret_key.get_secret_value())
    scope_set = frozenset(s.strip() for s in scopes.split(",") if s.strip())
    line_set = frozenset(x.strip() for x in lines.split(",") if x.strip()) if lines else None
    try:
        key = store.create(name, scope_set, line_set)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    except Exception as err:
        typer.echo(f"error: could not store the key: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(key)
