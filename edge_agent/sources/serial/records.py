"""Record text → named fields, by the profile's layout and record type (pure).

The names are what a profile's signals point at (``at``). A record the profile
cannot read is returned as a reason, never raised: ``unknown_type`` (a record
type the profile does not list), ``field_count`` (too few or too many
positional fields), ``no_match`` (regex layout), ``malformed`` (a key_value
field without its separator).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.sources.serial.models import Framing, Record


@dataclass(frozen=True)
class Corrupt:
    reason: str
    raw: bytes


Fields = dict[str, str]


class RecordParser:
    def __init__(self, record: Record, framing: Framing) -> None:
        self.record = record
        self.framing = framing
        self._regex = re.compile(record.pattern) if record.pattern else None

    def parse(self, body: bytes) -> Fields | Corrupt:
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            return Corrupt("malformed", body)
        layout = self.record.layout
        if layout == "key_value":
            fields = self._key_value(text)
        elif layout == "positional":
            return self._positional(text, body)
        else:
            fields = self._regex_fields(text)
        if fields is None:
            return Corrupt("no_match" if layout == "regex" else "malformed", body)
        return self._typed(fields, body)

    def _typed(self, fields: Fields, body: bytes) -> Fields | Corrupt:
        """Add the constants of the record's type; an unlisted type is a reason."""
        rec = self.record
        if rec.type_field is None:
            return fields
        kind = rec.types.get(fields.get(rec.type_field, ""))
        if kind is None:
            return Corrupt("unknown_type", body)
        return fields | kind.values

    def _key_value(self, text: str) -> Fields | None:
        f = self.framing
        fields: Fields = {}
        for part in text.split(f.field_separator):
            key, sep, value = part.partition(f.key_value_separator)
            if not sep or not key:
                return None
            fields[key] = value
        return fields

    def _regex_fields(self, text: str) -> Fields | None:
        assert self._regex is not None
        match = self._regex.fullmatch(text)
        if match is None:
            return None
        return {k: v for k, v in match.groupdict().items() if v is not None}

    def _positional(self, text: str, body: bytes) -> Fields | Corrupt:
        rec = self.record
        parts = text.split(self.framing.field_separator)
        common = rec.fields
        if len(parts) < len(common):
            return Corrupt("field_count", body)
        fields = dict(zip(common, parts, strict=False))
        rest = parts[len(common) :]
        if rec.type_field is None:
            return fields if not rest else Corrupt("field_count", body)
        kind = rec.types.get(fields[rec.type_field])
        if kind is None:
            return Corrupt("unknown_type", body)
        if not len(kind.fields) - kind.optional <= len(rest) <= len(kind.fields):
            return Corrupt("field_count", body)
        fields.update(zip(kind.fields, rest, strict=False))
        return fields | kind.values
