"""Scheme versions from a YAML file, with errors naming the file, the entry and the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from kpi_service.scores.model import SchemeSpec
from takt_common.errors import TaktError
from takt_wire.errors import describe_validation_error


class SchemeFileError(TaktError, ValueError):
    """The file cannot be read or an entry is invalid (the message says where)."""


def load_specs(path: Path) -> list[SchemeSpec]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise SchemeFileError(f"{path}: cannot read: {err}") from err
    entries = data if isinstance(data, list) else [data]
    specs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SchemeFileError(f"{path}: entry {i}: a scheme version is a mapping")
        try:
            specs.append(SchemeSpec.model_validate(entry))
        except ValidationError as err:
            problems = describe_validation_error(err, limit=10)
            raise SchemeFileError(f"{path}: entry {i}: {problems}") from err
    return specs
