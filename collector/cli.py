"""``takt collector run|dlq``: the collector service and its dead-letter store."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from collector.config import CollectorSettings, ConfigError, dlq_path_of, load_settings

app = typer.Typer(no_args_is_help=True)
dlq_app = typer.Typer(no_args_is_help=True, help="Inspect and replay the dead-letter store.")
app.add_typer(dlq_app, name="dlq")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML configuration file.", exists=True)
]


def _dlq_path(config: Path | None, dlq: Path | None) -> Path:
    """The local dead-letter file: no broker or InfluxDB secrets needed to read it."""
    path = dlq
    if path is None:
        try:
            path = dlq_path_of(config)
        except ConfigError as err:
            typer.echo(err.report(), err=True)
            raise typer.Exit(2) from None
    if not path.is_file():
        typer.echo(f"no dead-letter store at {path} (nothing was dead-lettered yet?)", err=True)
        raise typer.Exit(1)
    return path


DlqOption = Annotated[
    Path | None,
    typer.Option("--dlq", help="The dead-letter file (default: dlq_path of --config or env)."),
]


def _settings(config: Path | None) -> CollectorSettings:
    try:
        return load_settings(config)
    except ConfigError as err:
        typer.echo(err.report(), err=True)
        raise typer.Exit(2) from None


@app.command()
def run(config: ConfigOption = None) -> None:
    """Consume events from MQTT and write them to InfluxDB until SIGTERM/SIGINT."""
    settings = _settings(config)
    from collector.service import Collector
    from takt_common.logs import configure

    configure(settings.log_level, quiet=("httpx",))

    async def main() -> None:
        collector = Collector(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, collector.stop)
        await collector.run()

    asyncio.run(main())


@dlq_app.command("list")
def dlq_list(
    config: ConfigOption = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include replayed letters.")] = False,
    limit: int = 100,
    dlq: DlqOption = None,
) -> None:
    """One line per dead letter: id, time, kind, reason, topic, detail."""
    from datetime import UTC, datetime

    from collector.dlq import DeadLetterStore

    store = DeadLetterStore(_dlq_path(config, dlq))
    for letter in store.list(reason=reason, include_replayed=all_, limit=limit):
        when = datetime.fromtimestamp(letter.at, UTC).isoformat(timespec="seconds")
        mark = " (replayed)" if letter.replayed_at else ""
        typer.echo(
            f"{letter.id}\t{when}\t{letter.kind}\t{letter.reason}{mark}\t{letter.topic}\t"
            f"{letter.detail[:120]}"
        )
    counts = store.counts()
    typer.echo(f"# unreplayed by reason: {counts or 'none'}", err=True)


@dlq_app.command("show")
def dlq_show(letter_id: int, config: ConfigOption = None, dlq: DlqOption = None) -> None:
    """Everything stored about one dead letter, payload included."""
    from collector.dlq import DeadLetterStore

    letter = DeadLetterStore(_dlq_path(config, dlq)).get(letter_id)
    if letter is None:
        typer.echo(f"no dead letter {letter_id}", err=True)
        raise typer.Exit(1)
    for name in ("id", "at", "kind", "reason", "detail", "topic", "properties", "replayed_at"):
        typer.echo(f"{name}: {getattr(letter, name)}")
    typer.echo("payload:")
    typer.echo(letter.payload.decode("utf-8", errors="replace"))


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Letter ids (default: all).")] = None,
    config: ConfigOption = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
) -> None:
    """Send letters back through the broker (or InfluxDB, for points) after a fix."""
    from collector.dlq import DeadLetterStore
    from collector.replay import replay

    settings = _settings(config)
    store = DeadLetterStore(settings.dlq_path)
    letters = store.list(reason=reason, limit=-1)
    if ids:
        wanted = set(ids)
        letters = [letter for letter in letters if letter.id in wanted]
    done = replay(store, settings, letters)
    typer.echo(f"replayed {done} of {len(letters)}")
    if done < len(letters):
        raise typer.Exit(1)
