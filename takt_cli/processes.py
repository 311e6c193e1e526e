"""Child processes the demo starts, and the promise to leave none behind.

Each child runs in its own session (process group), so stopping it also stops
anything it started; stop order is the reverse of start order (agent before
broker, so it can flush), SIGTERM first, SIGKILL for whatever does not go.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from takt_cli.localservices import LocalService


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class ProcessGroup:
    """Services and child processes started together and stopped together."""

    workdir: Path
    stop_timeout_s: float = 20.0
    _started: list[Child | LocalService] = field(default_factory=list)

    def add_service(self, service: LocalService) -> LocalService:
        self._started.append(service)
        service.start()
        return service

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        log_path = self.workdir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        child = Child(name=name, proc=proc, log_path=log_path)
        self._started.append(child)
        return child

    def children(self) -> list[Child]:
        return [c for c in self._started if isinstance(c, Child)]

    def dead_children(self) -> list[Child]:
        return [c for c in self.children() if not c.alive]

    def stop_all(self) -> None:
        """Stop everything, newest first; returns only when all are gone."""
        for item in reversed(self._started):
            if isinstance(item, Child):
                self._stop_child(item)
            else:
                item.stop(self.stop_timeout_s)
        self._started.clear()

    def _stop_child(self, child: Child) -> None:
        if child.alive:
            child.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout_s
            while child.alive and time.monotonic() < deadline:
                time.sleep(0.05)
        # The group may outlive its leader (grandchildren): always sweep it.
        child.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
