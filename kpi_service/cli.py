"""``takt kpi``: run the service, migrate its store, manage API keys.

Key management is an admin action on the host: each create, rotate and revoke is written
to the audit log (principal ``cli``, method ``CLI``) next to the API's own entries.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import typer

from kpi_service.core.apikeys import KeyStore, UnknownKey
from kpi_service.core.audit import AuditLog
from kpi_service.core.config import ConfigError, Settings, load_settings
from kpi_service.store.db import Database, StoreError
from kpi_service.store.legacy import import_legacy

app = typer.Typer(no_args_is_help=True)
apikey = typer.Typer(no_args_is_help=True, help="API keys (stored hashed; shown once).")
db = typer.Typer(no_args_is_help=True, help="The relational store (keys, audit, schemes).")
app.add_typer(apikey, name="apikey")
app.add_typer(db, name="db")

ExpiresDays = Annotated[
    int | None, typer.Option(min=1, max=3660, help="The key expires after this many days.")
]
ExpiresOn = Annotated[
    str | None, typer.Option(help="The key expires at the start of this UTC day (YYYY-MM-DD).")
]


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as err:
        typer.echo(err.report(), err=True)
        raise typer.Exit(2) from err


def _expiry(days: int | None, on: str | None) -> datetime | None:
    if days is not None and on is not None:
        typer.echo("error: give --expires-in-days or --expires-on, not both", err=True)
        raise typer.Exit(2)
    if days is not None:
        return datetime.now(UTC) + timedelta(days=days)
    if on is not None:
        try:
            return datetime.combine(date.fromisoformat(on), time(0), UTC)
        except ValueError as err:
            typer.echo(f"error: --expires-on {on!r} is not a date YYYY-MM-DD", err=True)
            raise typer.Exit(2) from err
    return None


def _stores(settings: Settings) -> tuple[KeyStore, AuditLog]:
    try:
        store = Database(settings.store_url)
    except StoreError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    import_legacy(store, settings.state_dir)
    return KeyStore(store, settings.secret_key.get_secret_value()), AuditLog(store)


def _audit(log: AuditLog, action: str, params: list[tuple[str, str]], code: int) -> None:
    log.record("cli", "CLI", f"kpi apikey {action}", params, code)


@app.command()
def run(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the KPI API with uvicorn (settings from TAKT_KPI_* and TAKT_KPI_CONFIG_FILE).

    The store is migrated to the newest schema before the first request."""
    import uvicorn

    from kpi_service.main import create_app
    from takt_common.logs import configure

    configure("INFO", quiet=("httpx",))  # the house's JSON lines, uvicorn's records included

    try:
        application = create_app(_settings())
    except (ConfigError, StoreError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    uvicorn.run(application, host=host, port=port, log_config=None)


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the store's schema to the newest revision (also done by `takt kpi run`)."""
    try:
        store = Database(_settings().store_url)
    except StoreError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(f"store at revision {store.revision()}")


@apikey.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who the key is for (unique).")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: hr:read, supervisor, admin, ingest.")
    ],
    lines: Annotated[
        str | None, typer.Option(help="Comma-separated lines (supervisors); omit for all.")
    ] = None,
    expires_in_days: ExpiresDays = None,
    expires_on: ExpiresOn = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    keys, log = _stores(_settings())
    expires = _expiry(expires_in_days, expires_on)
    scope_set = frozenset(s.strip() for s in scopes.split(",") if s.strip())
    line_set = frozenset(x.strip() for x in lines.split(",") if x.strip()) if lines else None
    params = [("name", name), ("scopes", scopes), ("lines", lines or "*")]
    params.append(("expires_at", expires.isoformat() if expires else "never"))
    try:
        key = keys.create(name, scope_set, line_set, expires_at=expires)
    except ValueError as err:
        _audit(log, "create", params, 2)
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    _audit(log, "create", params, 0)
    typer.echo(key)


@apikey.command("list")
def apikey_list() -> None:
    """Every key (never the secret): scopes, lines, created, expiry, last use, status."""
    from rich.console import Console
    from rich.table import Table

    keys, _ = _stores(_settings())
    now = datetime.now(UTC)

    def when(t: datetime | None) -> str:
        return t.strftime("%Y-%m-%d %H:%M:%SZ") if t else "-"

    table = Table("name", "scopes", "lines", "created", "expires", "last used", "status")
    for k in keys.list():
        table.add_row(
            k.name, ",".join(k.scopes), ",".join(k.lines) if k.lines is not None else "*",
            when(k.created_at), when(k.expires_at), when(k.last_used_at), k.status(now),
        )  # fmt: skip
    Console(width=200).print(table)


@apikey.command("revoke")
def apikey_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """The key stops working at once (it stays listed as revoked)."""
    keys, log = _stores(_settings())
    try:
        keys.revoke(name)
    except UnknownKey as err:
        _audit(log, "revoke", [("name", name)], 2)
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    _audit(log, "revoke", [("name", name)], 0)
    typer.echo(f"revoked {name}")


@apikey.command("rotate")
def apikey_rotate(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    expires_in_days: ExpiresDays = None,
    expires_on: ExpiresOn = None,
) -> None:
    """Print a new secret for the key (same scopes and lines); the old one stops working."""
    keys, log = _stores(_settings())
    expires = _expiry(expires_in_days, expires_on)
    try:
        key = keys.rotate(name, expires_at=expires)
    except (UnknownKey, ValueError) as err:
        _audit(log, "rotate", [("name", name)], 2)
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    _audit(log, "rotate", [("name", name)], 0)
    typer.echo(key)


scheme = typer.Typer(no_args_is_help=True, help="KPI schemes (versioned, from YAML files).")
app.add_typer(scheme, name="scheme")


@scheme.command("apply")
def scheme_apply(
    file: Annotated[Path, typer.Argument(help="YAML: one scheme version, or a list of them.")],
) -> None:
    """Add the file's scheme versions (each must take effect after the scheme's last one)."""
    from kpi_service.scores.loader import SchemeFileError, load_specs
    from kpi_service.scores.registry import SchemeConflict, SchemeRegistry

    settings = _settings()
    _, log = _stores(settings)
    try:
        specs = load_specs(file)
    except SchemeFileError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    registry = SchemeRegistry(log.db)
    for spec in specs:
        params = [("file", str(file)), ("scheme", spec.scheme)]
        params.append(("effective_from", spec.effective_from.isoformat()))
        try:
            added = registry.add(spec, "cli")
        except SchemeConflict as err:
            log.record("cli", "CLI", "kpi scheme apply", params, 2)
            typer.echo(f"error: {file}: {err}", err=True)
            raise typer.Exit(2) from err
        log.record("cli", "CLI", "kpi scheme apply", params, 0)
        typer.echo(f"{spec.scheme} version {added.version} in force from {spec.effective_from}")


@scheme.command("list")
def scheme_list() -> None:
    """Every scheme and its versions."""
    from kpi_service.scores.registry import SchemeRegistry

    _, log = _stores(_settings())
    registry = SchemeRegistry(log.db)
    for name in registry.names():
        for v in registry.versions(name):
            weights = ", ".join(f"{m.name} {m.weight:g}" for m in v.spec.metrics)
            typer.echo(
                f"{name} v{v.version} from {v.spec.effective_from} per {v.spec.period}: {weights}"
            )
