"""The one settings loader (takt_common.settings): every problem at once, each with its line.

Expected lines are found by searching the hand-written file's text, not taken from
the loader; each file below is written the way a person would get it wrong.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from collector.config import load_settings as load_collector
from kpi_service.core.config import load_settings as load_kpi
from takt_common.errors import ConfigError, Problem, TaktError
from takt_common.settings import DeprecatedKey, TaktSettings, load_settings


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle`` (the independent answer)."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert hits, needle
    return hits[0]


def by_field(err: ConfigError) -> dict[str, Problem]:
    return {p.field: p for p in err.problems}


COLLECTOR = """\
environment: development
mqtt:
  host: broker.local
  port: 99999
  pasword: typo-but-not-a-secret-field
influx:
  url: http://influx:8086
  batch_sise: 100
  password: in-the-file
rollup:
  debounce_s: soon
"""


def test_a_collector_file_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(COLLECTOR)
    with pytest.raises(ConfigError) as caught:
        load_collector(path)
    err = caught.value
    assert isinstance(err, TaktError) and isinstance(err, ValueError)
    problems = by_field(err)
    expected = {
        "mqtt.port": "port: 99999",
        "mqtt.pasword": "pasword:",
        "influx.batch_sise": "batch_sise:",
        "influx.password": "password: in-the-file",
        "rollup.debounce_s": "debounce_s:",
    }
    assert set(problems) == set(expected), err
    for field, needle in expected.items():
        assert problems[field].line == line_of(COLLECTOR, needle), problems[field]
        assert problems[field].file == str(path)
        assert f"{path}:{line_of(COLLECTOR, needle)}: {field}: " in str(err)
    assert "did you mean 'batch_size'" in problems["influx.batch_sise"].message
    assert "did you mean 'password'" in problems["mqtt.pasword"].message
    assert "TAKT_COLLECTOR_INFLUX__PASSWORD" in problems["influx.password"].message
    assert "in-the-file" not in str(err), "a secret is never echoed"


def test_a_value_from_the_environment_is_blamed_on_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "environment: development\ninflux:\n  batch_size: 100\n"
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    monkeypatch.setenv("TAKT_COLLECTOR_INFLUX__BATCH_SIZE", "0")
    with pytest.raises(ConfigError) as caught:
        load_collector(path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == ("environment", None, "influx.batch_size")


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    text = "environment: development\nmqtt:\n  host: [a, b\n  port: 1883\n"
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_collector(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path) and "not valid YAML" in problem.message
    assert problem.line is not None and problem.line >= line_of(text, "host:")


def test_kpi_file_found_through_the_env_var_reports_all_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        "environment: development\n"
        "timezone: Mars/Olympus\n"
        "standards:\n"
        "  - {station: S1, cycle_s: -3}\n"
        "secret_key: in-a-file-but-long-enough\n"
        "max_page_sise: 10\n"
    )
    path = tmp_path / "kpi.yaml"
    path.write_text(text)
    monkeypatch.setenv("TAKT_KPI_CONFIG_FILE", str(path))
    with pytest.raises(ConfigError) as caught:
        load_kpi()
    problems = by_field(caught.value)
    assert problems["standards.0.cycle_s"].line == line_of(text, "cycle_s")
    assert problems["secret_key"].line == line_of(text, "secret_key")
    assert "TAKT_KPI_SECRET_KEY" in problems["secret_key"].message
    assert "did you mean 'max_page_size'" in problems["max_page_sise"].message
    # the time zone is checked by a model validator, which runs only once the fields are valid
    text = text.replace("  - {station: S1, cycle_s: -3}\n", "  - {station: S1, cycle_s: 3}\n")
    path.write_text(text.replace("secret_key: in-a-file-but-long-enough\n", ""))
    with pytest.raises(ConfigError, match="max_page_sise"):
        load_kpi()


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = "http://default"
    token: SecretStr | None = None


class _Demo(TaktSettings):
    model_config = SettingsConfigDict(
        env_prefix="TAKT_DEMO_", env_nested_delimiter="__", extra="forbid"
    )
    renamed = {"store_url": "store.url"}
    store: _Inner = Field(default_factory=_Inner)
    level: int = 1


def test_a_renamed_key_still_works_with_a_warning_naming_the_new_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text("level: 2\nstore_url: http://old-name\n")
    with pytest.warns(DeprecatedKey, match="'store_url' is deprecated; use 'store.url'"):
        demo = load_settings(_Demo, path)
    assert (demo.store.url, demo.level) == ("http://old-name", 2)
    monkeypatch.setenv("TAKT_DEMO_STORE_URL", "http://old-env")
    with pytest.warns(
        DeprecatedKey, match="TAKT_DEMO_STORE_URL is deprecated; use TAKT_DEMO_STORE__URL"
    ):
        demo = load_settings(_Demo, path)
    assert demo.store.url == "http://old-env", "the old variable beats the file"
    monkeypatch.setenv("TAKT_DEMO_STORE__URL", "http://new-env")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecatedKey)
        assert load_settings(_Demo, path).store.url == "http://new-env"


def test_a_renamed_key_with_a_wrong_value_points_at_the_old_line(tmp_path: Path) -> None:
    text = "level: 2\nstore_url: 42\nlevl: 3\n"
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    with pytest.warns(DeprecatedKey), pytest.raises(ConfigError) as caught:
        load_settings(_Demo, path)
    problems = by_field(caught.value)
    assert problems["store.url"].line == line_of(text, "store_url")
    assert problems["levl"].line == line_of(text, "levl") and "'level'" in problems["levl"].message


def test_every_secret_field_is_refused_in_a_file_without_a_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "store:\n  url: http://x\n  token: t0ken\n"
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(_Demo, path)
    (problem,) = caught.value.problems
    assert problem.field == "store.token" and problem.line == line_of(text, "token")
    assert "TAKT_DEMO_STORE__TOKEN" in problem.message
    path.write_text("store:\n  url: http://x\n")
    monkeypatch.setenv("TAKT_DEMO_STORE__TOKEN", "t0ken")
    token = load_settings(_Demo, path).store.token
    assert token is not None and token.get_secret_value() == "t0ken"


def test_kpi_and_alerts_read_one_influx_section_and_accept_the_old_flat_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kpi_service.alerts.config import AlertSettings
    from kpi_service.core.config import Settings

    path = tmp_path / "kpi.yaml"
    path.write_text("environment: development\ninflux:\n  url: http://db:8086\n  database: plant\n")
    monkeypatch.setenv("TAKT_KPI_CONFIG_FILE", str(path))
    monkeypatch.setenv("TAKT_KPI_INFLUX__PASSWORD", "reader-secret")
    kpi = load_kpi()
    assert (kpi.influx.url, kpi.influx.database) == ("http://db:8086", "plant")
    assert kpi.influx.password is not None
    assert kpi.influx.password.get_secret_value() == "reader-secret"
    # the names of before the section: file, environment and code, each with a warning
    path.write_text("environment: development\ninflux_url: http://old:8086\ninflux_db: old\n")
    monkeypatch.setenv("TAKT_KPI_INFLUX_USERNAME", "takt-read")
    with pytest.warns(DeprecatedKey) as caught:
        kpi = load_kpi()
    assert (kpi.influx.url, kpi.influx.database) == ("http://old:8086", "old")
    assert kpi.influx.username == "takt-read" and kpi.influx_username == "takt-read"
    said = " ".join(str(w.message) for w in caught)
    assert "use 'influx.url'" in said and "use TAKT_KPI_INFLUX__USERNAME" in said
    with pytest.warns(DeprecatedKey, match="'influx_db' is deprecated; use 'influx.database'"):
        assert Settings(environment="development", influx_db="code").influx.database == "code"  # type: ignore[call-arg]
    # the alert engine: its own fields on top of the KPI service's section
    monkeypatch.setenv("TAKT_ALERTS_INFLUX_DB", "alerts-db")
    with pytest.warns(DeprecatedKey, match="TAKT_ALERTS_INFLUX__DATABASE"):
        alerts = AlertSettings()
    merged = alerts.influx_for(kpi.influx)
    assert (merged.url, merged.database, merged.username) == (
        "http://old:8086",
        "alerts-db",
        "takt-read",
    )
    monkeypatch.delenv("TAKT_ALERTS_INFLUX_DB")
    assert AlertSettings().influx_for(kpi.influx) == kpi.influx
