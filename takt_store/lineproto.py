"""Line protocol escaping (InfluxDB 1.x rules, which 2.x and 3.x share) and a generic point.

The collector's hot path (``collector.lineproto.Formatter``) builds its lines with
these rules and caches; :func:`point_line` is the plain form for the few points
written elsewhere (rollups).
"""

from __future__ import annotations

from collections.abc import Mapping

from takt_common.errors import TaktError

_TAG_TABLE = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_MEASUREMENT_TABLE = str.maketrans({",": "\\,", " ": "\\ "})
_FIELD_STR_TABLE = str.maketrans({"\\": "\\\\", '"': '\\"'})


class UnrepresentableError(TaktError, ValueError):
    """A value InfluxDB 1.x line protocol cannot carry faithfully."""


def _check_key_or_tag(value: str) -> None:
    if not value:
        raise UnrepresentableError("tag keys and values must not be empty")
    if "\\" in value or "\n" in value or "\r" in value:
        # InfluxDB 1.x unescapes only '\,' '\=' '\ ' in tags; a backslash before a
        # separator (or at the end) changes how the line splits, and a newline ends it.
        raise UnrepresentableError(f"tag value {value!r} contains a backslash or a line break")


def escape_tag(value: str) -> str:
    """Tag key, tag value or field key: commas, equals signs and spaces are escaped."""
    _check_key_or_tag(value)
    return value.translate(_TAG_TABLE)


def escape_measurement(value: str) -> str:
    """Measurement name: commas and spaces are escaped."""
    _check_key_or_tag(value)
    return value.translate(_MEASUREMENT_TABLE)


def quote_field(value: str) -> str:
    """String field value, quoted, with backslashes and double quotes escaped."""
    if "\n" in value or "\r" in value:
        # 1.x accepts a newline inside quotes, but line-oriented readers and the
        # bisecting writer split on it; keep one point per line.
        value = value.replace("\r", "\\r").replace("\n", "\\n")
    return f'"{value.translate(_FIELD_STR_TABLE)}"'


def tag_value(value: str) -> str:
    """:func:`escape_tag`, with a fast path for the common value that needs nothing."""
    if "," in value or "=" in value or " " in value or "\\" in value or "\n" in value:
        return escape_tag(value)
    if not value:
        raise UnrepresentableError("tag values must not be empty")
    return value


def string_field(value: str) -> str:
    """:func:`quote_field`, with a fast path for the common value that needs nothing."""
    if '"' in value or "\\" in value or "\n" in value or "\r" in value:
        return quote_field(value)
    return f'"{value}"'


def float_field(value: float) -> str:
    """Float field: repr round-trips exactly; integral floats keep a decimal point."""
    return repr(float(value))


def field_value(value: object, kind: str) -> str:
    """One field value by its schema type (``int``, ``float``, ``str``, ``bool``).

    The type comes from the schema, not from the value: InfluxDB's JSON spells the
    float 60.0 as ``60``, which must not be written back as an integer field.
    """
    kind = kind.rstrip("?")
    if kind == "int":
        return f"{int(value)}i"  # type: ignore[call-overload]
    if kind == "float":
        return float_field(float(value))  # type: ignore[arg-type]
    if kind == "bool":
        return "true" if value else "false"
    return string_field(str(value))


def point_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, object],
    types: Mapping[str, str],
    time_ns: int,
) -> str:
    """One point; tags sorted by key (InfluxDB's own order), empty tag values left out
    (InfluxDB stores an empty tag as no tag), fields typed by ``types``."""
    head = escape_measurement(measurement) + "".join(
        f",{escape_tag(k)}={tag_value(v)}" for k, v in sorted(tags.items()) if v != ""
    )
    body = ",".join(
        f"{escape_tag(k)}={field_value(v, types[k])}" for k, v in fields.items() if v is not None
    )
    return f"{head} {body} {time_ns}"
