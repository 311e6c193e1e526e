"""What every protocol's connection model shares (the ``connection:`` of a station).

The config loader only talks to connections through these hooks, so a new
protocol needs no special case outside its own package.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ConnectionModel(BaseModel):
    """Base of a station's ``connection:``; ``type`` names the protocol."""

    model_config = ConfigDict(extra="forbid")

    type: str

    def rebase(self, base: Path) -> None:
        """Make relative file paths relative to the config file's folder."""

    def env_problems(self) -> list[str]:
        """Problems with environment variables this connection needs (field, message)."""
        return []

    def source_key(self, station: str) -> str:
        """Stations whose keys are equal share one source (one connection, one poller)."""
        return self.type + ":" + self.model_dump_json()

    def shared_settings(self) -> tuple[str, ...]:
        """Fields that stations sharing one source (equal ``source_key``) must agree on.

        The shared source is set up from the first station's connection, so a later
        station that says otherwise would silently be ignored; the loader refuses it.
        """
        return ()


class Credentials(ConnectionModel):
    username: str | None = None
    password_env: str | None = Field(
        default=None, description="Name of the env var with the password."
    )

    def password(self) -> str | None:
        if self.password_env is None:
            return None
        return os.environ.get(self.password_env)

    def env_problems(self) -> list[str]:
        if self.password_env and self.password_env not in os.environ:
            return [f"password_env': environment variable {self.password_env} is not set"]
        return []


def rebased(path: Path | None, base: Path) -> Path | None:
    """``path`` under ``base`` when relative; None when there is nothing to change."""
    return None if path is None or path.is_absolute() else base / path
