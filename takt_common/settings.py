"""The one settings loader of every Takt service: a YAML file, then the environment.

Precedence, lowest first: model defaults, the YAML file, the environment
(``<PREFIX>SECTION__FIELD``), explicit overrides (tests, CLI). Secrets — every
field typed ``SecretStr`` — come from the environment only: a file that holds one
is refused. Every problem of a file is reported at once, each with the file, the
line (from the YAML node marks), the field and, for an unknown key, the key that
was probably meant. Keys renamed for consistency keep working for one release
with a warning that names the new key.
"""

from __future__ import annotations

import copy
import difflib
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError

from takt_common.errors import ConfigError, Problem
from takt_common.modelwalk import field_names, is_secret
from takt_common.yamlfile import Document, Loc, as_loc, read_yaml

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S", bound="TaktSettings")

Hint = Callable[[Loc, Any], str | None]
"""Extra advice for one error (``loc``, offending value) -> text, e.g. "did you mean 'idle'"."""


class DeprecatedKey(FutureWarning):
    """A configuration key or environment variable that was renamed; the new name is given."""


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """ " (did you mean 'x'?)" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_file_data: ContextVar[dict[str, Any] | None] = ContextVar("takt_settings_file", default=None)


class _FileSource(PydanticBaseSettingsSource):
    """The YAML file's content, below the environment in precedence."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __init__(self, settings_cls: type[TaktSettings]) -> None:
        super().__init__(settings_cls)
        self.settings_cls: type[TaktSettings] = settings_cls

    def __call__(self) -> dict[str, Any]:
        data = _file_data.get()
        if data is None:
            config_env = self.settings_cls.config_file_env
            path = os.environ.get(config_env) if config_env else None
            if not path:
                return _renamed_env(self.settings_cls, {})
            doc, problems = _prepare(self.settings_cls, read_yaml(Path(path)))
            if problems:
                raise ConfigError(problems)
            data = doc.data
        return _renamed_env(self.settings_cls, copy.deepcopy(data))


class TaktSettings(BaseSettings):
    """Base of every service's settings: file below environment below overrides.

    ``config_file_env`` names an environment variable holding the file's path,
    for services started with settings built directly (``Settings()``).
    ``renamed`` maps old dotted keys to new ones (deprecated for one release);
    ``secret_names`` are key names refused anywhere in the file, besides SecretStr fields.
    """

    config_file_env: ClassVar[str | None] = None
    renamed: ClassVar[Mapping[str, str]] = {}
    secret_names: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert issubclass(settings_cls, TaktSettings)
        return (init_settings, env_settings, _FileSource(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        """Deprecated keys passed in code (``Settings(influx_url=...)``) move too, warning."""
        if not isinstance(data, dict) or not cls.renamed:
            return data
        data = copy.deepcopy(data)
        for old, new in cls.renamed.items():
            found, value = _pop(data, tuple(old.split(".")))
            if found:
                _warn(f"setting {old!r} is deprecated; use {new!r}")
                _pop(data, tuple(new.split(".")))
                _put(data, tuple(new.split(".")), value)
        return data


def _env_prefix(cls: type[BaseModel]) -> str:
    return str(cls.model_config.get("env_prefix", "") or "")


def env_name(cls: type[BaseModel], loc: Sequence[object]) -> str:
    """The environment variable that sets ``loc`` (``TAKT_COLLECTOR_INFLUX__PASSWORD``)."""
    return _env_prefix(cls) + "__".join(str(p) for p in loc).upper()


def _pop(data: dict[str, Any], loc: Loc) -> tuple[bool, Any]:
    """Remove the value at ``loc`` (through mappings and lists); (found, value)."""
    found, parent = _lookup(data, loc[:-1])
    if not found or not isinstance(parent, dict):
        return False, None
    key = next((k for k in parent if str(k) == loc[-1]), None)
    if key is None:
        return False, None
    return True, parent.pop(key)


def _put(data: dict[str, Any], loc: Loc, value: Any) -> None:
    node = data
    for part in loc[:-1]:
        node = node.setdefault(part, {})
    node.setdefault(loc[-1], value)


def _warn(message: str) -> None:
    """A warning (not a log line: logging is set up from the settings being read)."""
    warnings.warn(message, DeprecatedKey, stacklevel=4)


def _apply_renames(cls: type[TaktSettings], doc: Document) -> None:
    """Move deprecated keys of the file to their new home (and their lines), warning."""
    for old, new in cls.renamed.items():
        old_loc, new_loc = tuple(old.split(".")), tuple(new.split("."))
        found, value = _pop(doc.data, old_loc)
        if found:
            _warn(f"{doc.file}: key {old!r} is deprecated; use {new!r}")
            _put(doc.data, new_loc, value)
            doc.move(old_loc, new_loc)


def _renamed_env(cls: type[TaktSettings], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with deprecated environment variables applied (they beat the file)."""
    for old, new in cls.renamed.items():
        old_env = env_name(cls, old.split("."))
        if old_env in os.environ:
            new_loc = tuple(new.split("."))
            _warn(f"environment variable {old_env} is deprecated; use {env_name(cls, new_loc)}")
            _pop(data, new_loc)
            _put(data, new_loc, os.environ[old_env])
    return data


def _secret_problems(
    cls: type[BaseModel], doc: Document, names: frozenset[str] = frozenset()
) -> list[Problem]:
    """Refuse (and drop) every secret value the file holds, naming its variable.

    A secret is a field typed ``SecretStr`` or any key called one of ``names``
    (a password typed into the wrong section is still a password in a file).
    """
    problems: list[Problem] = []
    for loc in sorted(doc.lines, key=lambda loc: doc.lines[loc]):
        secret = bool(loc) and (loc[-1] in names or is_secret(cls, loc))
        if secret and not is_secret(cls, loc[:-1]):
            found, _ = _pop(doc.data, loc)
            if not found:
                continue
            in_list = any(p.isdigit() for p in loc)
            hint = "e.g. a password_env variable" if in_list else env_name(cls, loc)
            if issubclass(cls, BaseSettings):
                text = f"secrets come from the environment ({hint}), never from a file"
            else:
                text = "secrets come from the environment, never from a file"
            problems.append(doc.problem(loc, text))
    return problems


def _prepare(cls: type[TaktSettings], doc: Document) -> tuple[Document, list[Problem]]:
    _apply_renames(cls, doc)
    return doc, _secret_problems(cls, doc, cls.secret_names)


def _lookup(data: Any, loc: Loc) -> tuple[bool, Any]:
    node = data
    for part in loc:
        if isinstance(node, dict):
            key = next((k for k in node if str(k) == part), None)
            if key is None:
                return False, None
            node = node[key]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _data_loc(model: type[BaseModel], loc: Loc) -> Loc:
    """``loc`` without the tags pydantic inserts for discriminated unions (not keys)."""
    kept: list[str] = []
    for i, part in enumerate(loc):
        names = field_names(model, kept)
        is_tag = names and part not in names and i < len(loc) - 1
        if not (is_tag and loc[i + 1] in field_names(model, (*kept, part))):
            kept.append(part)
    return tuple(kept)


def problems_of(
    err: ValidationError,
    model: type[BaseModel],
    doc: Document | None,
    *,
    hint: Hint | None = None,
    env_keys: frozenset[str] = frozenset(),
) -> list[Problem]:
    """Every pydantic error as a Problem with file, line, field and advice."""
    problems = []
    for item in err.errors(include_url=False):
        loc = _data_loc(model, as_loc(item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and loc:
            message = "unknown key" + did_you_mean(loc[-1], field_names(model, loc[:-1]))
        extra = hint(loc, item.get("input")) if hint else None
        if extra:
            message += f" ({extra})"
        field = ".".join(loc) or "(root)"
        in_file, value = _lookup(doc.data, loc) if doc is not None else (False, None)
        from_env = (
            bool(loc)
            and loc[0].lower() in env_keys
            and not (in_file and value == item.get("input"))
        )
        if doc is None or from_env:
            problems.append(Problem(message, field=field, file="environment"))
        else:
            problems.append(doc.problem(loc, message))
    return problems


def _env_keys(cls: type[BaseModel]) -> frozenset[str]:
    """Top-level fields the environment sets (their values did not come from the file)."""
    prefix = _env_prefix(cls).upper()
    keys = set()
    for name in os.environ:
        if prefix and name.upper().startswith(prefix):
            keys.add(name[len(prefix) :].split("__")[0].lower())
    return frozenset(keys)


def load_settings(
    cls: type[S], path: Path | None, *, hint: Hint | None = None, **overrides: Any
) -> S:
    """Build ``cls`` from ``path`` (optional), the environment and ``overrides``.

    Raises one ConfigError listing every problem (file, line, field); nothing is
    half-loaded.
    """
    doc = read_yaml(path) if path is not None else Document("environment", {})
    doc, problems = _prepare(cls, doc)
    token = _file_data.set(doc.data)
    try:
        settings = cls(**overrides)
    except ValidationError as err:
        problems += problems_of(
            err, cls, doc if path is not None else None, hint=hint, env_keys=_env_keys(cls)
        )
    except SettingsError as err:
        problems.append(Problem(str(err), file="environment"))
    finally:
        _file_data.reset(token)
    if problems:
        raise ConfigError(problems)
    return settings


def load_model(model: type[M], path: Path, *, hint: Hint | None = None) -> M:
    """Validate a plain model (a device profile, a roster) from a YAML file, all errors at once."""
    doc = read_yaml(path)
    problems = _secret_problems(model, doc)
    try:
        value = model.model_validate(doc.data)
    except ValidationError as err:
        problems += problems_of(err, model, doc, hint=hint)
    if problems:
        raise ConfigError(problems)
    return value
