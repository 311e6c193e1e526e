"""Real Mosquitto and InfluxDB processes on free loopback ports, in a folder of our own.

Tests, benchmarks and ``make demo`` all need a broker and a database that behave
like production ones; these start the Debian binaries unprivileged with a config
written into a work folder, wait until they answer, and can be stopped, killed,
paused and started again on the same port with the same data (to test outages).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx

from takt_common.errors import TaktError

SETUP_HINT = "run `make setup` (installs mosquitto, influxdb, postgresql-15 and socat through apt)"
POSTGRES_BIN = ("/usr/lib/postgresql/15/bin",)


class ServiceError(TaktError, RuntimeError):
    """A local service could not be started or did not answer."""


_PORTS = (20_000, 32_767)
"""Below Linux's ephemeral range (32768-60999): a port handed out here and bound a few
seconds later cannot meanwhile become the local port of some outgoing connection, which
is what port 0 (an ephemeral port) risked on a busy test machine."""
_rng = random.Random()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (outside the ephemeral range)."""
    for _ in range(200):
        port = _rng.randint(*_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: any port
        sock.bind(("127.0.0.1", 0))
        fallback: int = sock.getsockname()[1]
        return fallback


def find_binary(name: str, extra_dirs: tuple[str, ...] = ("/usr/sbin", "/usr/bin")) -> str:
    """Path of a service binary, or a ServiceError saying how to install it."""
    found = shutil.which(name)
    if found:
        return found
    for folder in extra_dirs:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ServiceError(f"`{name}` is not installed: {SETUP_HINT}")


def _wait_tcp(port: int, deadline: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"process exited with {proc.returncode}; log:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listens on port {port} after the timeout; log:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class LocalService:
    """A server process we own: start, stop, kill -9, pause, resume, restart."""

    name: str
    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def wait_ready(self, timeout: float) -> None:
        raise NotImplementedError

    def run_as(self) -> str | None:
        """The user (and group) the server must run as; None = ourselves."""
        return None

    def start(self, timeout: float = 30.0) -> Self:
        if self.running:
            return self
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,
            user=self.run_as(),
            group=self.run_as(),
        )
        log.close()
        try:
            self.wait_ready(timeout)
        except ServiceError:
            self.stop()
            raise
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a hung server)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Mosquitto(LocalService):
    """Mosquitto 2 with persistence, optional password file, and room for a big backlog."""

    users: dict[str, str] = field(default_factory=dict)
    max_queued_messages: int = 2_000_000
    extra_config: str = ""
    max_packet_size: int = 0
    """Largest packet the broker accepts (0: no limit, so tests can send consumers an
    oversized payload); the local stack sets the production limit."""

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        config = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 0",
            *([f"max_packet_size {self.max_packet_size}"] if self.max_packet_size else []),
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_dest stderr",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        if self.users:
            password_file = self.workdir / "passwd"
            password_file.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    [find_binary("mosquitto_passwd"), "-b", str(password_file), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        config.write_text("\n".join(lines) + "\n" + self.extra_config)
        return [find_binary("mosquitto"), "-c", str(config)]

    def wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        _wait_tcp(self.port, time.monotonic() + timeout, self.proc, self.log_path)


@dataclass
class Influxd(LocalService):
    """InfluxDB 1.x serving the v1 HTTP API (``/write``, ``/query``, ``/ping``)."""

    rpc_port: int = 0
    admin: tuple[str, str] | None = None
    """When set, auth is enabled and this (user, password) is created as admin."""
    data_config: str = ""
    """Extra ``[data]`` settings, one per line (a benchmark compacts its load at once)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if not self.rpc_port:
            self.rpc_port = free_port()
        data = self.workdir / "influx"
        config = self.workdir / "influxdb.conf"
        config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{data}/meta"
[data]
  dir = "{data}/data"
  wal-dir = "{data}/wal"
  query-log-enabled = false
  cache-snapshot-memory-size = "64m"
{self.data_config}
[coordinator]
  log-queries-after = "0s"
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.admin else "false"}
  log-enabled = false
  max-body-size = 0
  max-concurrent-write-limit = 0
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = true
  log-enabled = false
  run-interval = "1s"
"""
        )
        return [find_binary("influxd"), "-config", str(config)]

    def wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        _wait_tcp(self.port, deadline, self.proc, self.log_path)
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    break
            time.sleep(0.05)
        else:
            raise ServiceError(f"influxd did not answer /ping; log:\n{_tail(self.log_path)}")
        if self.admin:
            user, password = self.admin
            # Allowed without credentials only while no user exists; harmless afterwards.
            response = httpx.post(
                f"{self.url}/query",
                data={
                    "q": f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES"
                },
                auth=(user, password),
                timeout=10,
            )
            if response.status_code != 200:
                raise ServiceError(f"could not create the admin user: {response.text}")

    def query(self, q: str, db: str | None = None, *, epoch: str = "ns") -> list[dict[str, object]]:
        """Run InfluxQL and return the series of the first statement (test/bench helper)."""
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        auth = self.admin if self.admin else None
        response = httpx.post(f"{self.url}/query", data=params, auth=auth, timeout=60)
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise ServiceError(f"InfluxQL error: {result['error']}")
        series: list[dict[str, object]] = result.get("series", [])
        return series

    def write(self, db: str, lines: str | bytes, precision: str = "ns") -> None:
        """POST line protocol (test/bench helper)."""
        auth = self.admin if self.admin else None
        response = httpx.post(
            f"{self.url}/write",
            params={"db": db, "precision": precision},
            content=lines,
            auth=auth,
            timeout=60,
        )
        if response.status_code != 204:
            raise ServiceError(f"write failed {response.status_code}: {response.text}")


@dataclass
class Postgres(LocalService):
    """PostgreSQL 15 (Debian's binaries) with trust auth on loopback, for the KPI store.

    PostgreSQL refuses to run as root, so as root the cluster lives in a temp folder of
    its own owned by ``postgres`` (a pytest temp folder is private to root) and the server
    runs as that user; the log stays in ``workdir``.
    """

    datadir: Path | None = None

    @property
    def superuser(self) -> str:
        return "postgres" if os.geteuid() == 0 else _current_user()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def run_as(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def command(self) -> list[str]:
        if self.datadir is None:
            self.datadir = Path(tempfile.mkdtemp(prefix="takt-pg-"))
            if os.geteuid() == 0:
                shutil.chown(self.datadir, "postgres", "postgres")
            with self.log_path.open("ab") as log:
                subprocess.run(
                    [find_binary("initdb", POSTGRES_BIN), "-D", str(self.datadir / "data"),
                     "-A", "trust", "-U", self.superuser, "-E", "UTF8", "--no-sync"],
                    check=True, stdout=log, stderr=subprocess.STDOUT, user=self.run_as(),
                    group=self.run_as(),
                )  # fmt: skip
        return [
            find_binary("postgres", POSTGRES_BIN), "-D", str(self.datadir / "data"),
            "-p", str(self.port), "-k", str(self.datadir), "-c", "listen_addresses=127.0.0.1",
            "-c", "fsync=off", "-c", "max_connections=200",
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> Self:
        return super().start(timeout)

    def wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        _wait_tcp(self.port, deadline, self.proc, self.log_path)
        import psycopg

        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise ServiceError(f"postgres did not accept connections; log:\n{_tail(self.log_path)}")

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.superuser} dbname={database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT): SIGTERM would wait for every client to disconnect."""
        self._signal(signal.SIGINT)
        super().stop(timeout)

    def remove(self) -> None:
        """Stop and delete the cluster's folder."""
        self.stop()
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)
            self.datadir = None


def _current_user() -> str:
    import getpass

    return getpass.getuser()


def mosquitto(
    workdir: Path,
    *,
    port: int | None = None,
    users: dict[str, str] | None = None,
    extra_config: str = "",
    max_packet_size: int = 0,
) -> Mosquitto:
    """A Mosquitto (not yet started) in ``workdir`` on ``port`` or a free one."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Mosquitto(
        name="mosquitto",
        workdir=workdir,
        port=port or free_port(),
        users=users or {},
        extra_config=extra_config,
        max_packet_size=max_packet_size,
    )


def influxd(
    workdir: Path,
    *,
    port: int | None = None,
    admin: tuple[str, str] | None = None,
    data_config: str = "",
) -> Influxd:
    """An influxd (not yet started) in ``workdir`` on ``port`` or a free one."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Influxd(
        name="influxd", workdir=workdir, port=port or free_port(), admin=admin,
        data_config=data_config,
    )  # fmt: skip


def postgres(workdir: Path, *, port: int | None = None) -> Postgres:
    """A PostgreSQL 15 (not yet started) logging in ``workdir``, on ``port`` or a free one."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Postgres(name="postgres", workdir=workdir, port=port or free_port())
