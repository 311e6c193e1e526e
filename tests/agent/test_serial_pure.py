"""Serial checksums, line framing and record layouts (pure; fixtures, no I/O).

Expected checksums come from outside the code under test: the catalogue check
value of CRC-16/MODBUS, the NMEA specification's worked example, and sums
computed here by hand.
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path

import pytest

from edge_agent.sources.serial import checksums
from edge_agent.sources.serial.framing import Corrupt, FrameDecoder
from edge_agent.sources.serial.models import Framing, Record


def test_crc16_modbus_matches_the_catalogue_check_value() -> None:
    # CRC RevEng catalogue: CRC-16/MODBUS check = 0x4B37 for "123456789"
    assert checksums.crc16_modbus(b"123456789") == 0x4B37
    assert checksums.render("crc16_modbus_hex", b"123456789") == b"4B37"
    assert checksums.verify("crc16_modbus_hex", b"123456789", b"4b37")


def test_xor_matches_the_nmea_example_and_sum8_wraps() -> None:
    sentence = b"GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert checksums.render("xor_hex", sentence) == b"47"  # the specification's example
    assert checksums.sum8(b"\xff\x02") == 0x01
    assert checksums.render("sum8_hex", b"AB") == b"83"  # 0x41 + 0x42
    assert not checksums.verify("sum8_hex", b"AB", b"84")
    assert not checksums.verify("xor_hex", b"AB", b"0")  # wrong width


def xor(body: bytes) -> bytes:
    return f"{reduce(lambda a, b: a ^ b, body, 0):02X}".encode()


def crc(body: bytes) -> bytes:
    from tests.agent.test_serial_records import crc16  # the test device's own table CRC

    return f"{crc16(body):04X}".encode()


PROFILES = Path(__file__).resolve().parent / "profiles"

NMEA = Framing(
    mode="line", prefix="$", checksum="xor_hex", checksum_separator="*", field_separator=","
)
TYPED = Record(
    layout="positional",
    fields=["ID", "TYPE"],
    type_field="TYPE",
    types={
        "L": {"fields": ["BADGE"], "values": {"ACTION": "login"}},
        "C": {"fields": ["CNT", "NOTE"], "optional": 1},
        "H": {},
    },
)


def test_nmea_lines_decode_to_typed_records_across_chunks() -> None:
    data = (
        b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
        b"$S1,L,B7*" + xor(b"S1,L,B7") + b"\r\n"
        b"$S1,C,12*" + xor(b"S1,C,12") + b"\r\n"
        b"\r\n"
        b"$S1,H*" + xor(b"S1,H") + b"\r\n"
    )
    decoder = FrameDecoder(NMEA, TYPED)
    out = []
    for i in range(0, len(data), 5):
        out += decoder.feed(data[i : i + 5])
    assert [o.reason for o in out if isinstance(o, Corrupt)] == ["unknown_type"]  # GPGGA
    assert [o for o in out if not isinstance(o, Corrupt)] == [
        {"ID": "S1", "TYPE": "L", "BADGE": "B7", "ACTION": "login"},
        {"ID": "S1", "TYPE": "C", "CNT": "12"},
        {"ID": "S1", "TYPE": "H"},
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"$S1,L*", "field_count"),  # the badge is missing
        (b"$S1,C,1,2,3*", "field_count"),
        (b"$S1,Q,1*", "unknown_type"),
        (b"$S1,H*00", "checksum"),
        (b"$S1,H", "checksum"),  # no checksum at all
        (b"junk$S1,H*", "noise"),
    ],
)
def test_bad_nmea_lines_are_skipped_with_their_reason(line: bytes, reason: str) -> None:
    if line.endswith(b"*"):
        line += xor(line[1:-1].split(b"$")[-1])
    out = FrameDecoder(NMEA, TYPED).feed(line + b"\r\n")
    assert isinstance(out[0], Corrupt) and out[0].reason == reason


def test_a_truncated_line_is_told_apart_from_the_next_record() -> None:
    good = b"$S1,H*" + xor(b"S1,H")
    out = FrameDecoder(NMEA, TYPED).feed(b"$S1,C,1" + good + b"\r\n")
    assert isinstance(out[0], Corrupt) and out[0].reason == "truncated"
    assert out[1] == {"ID": "S1", "TYPE": "H"}


def test_fixed_width_regex_with_trailing_crc() -> None:
    framing = Framing(mode="line", checksum="crc16_modbus_hex", terminator="\n")
    record = Record(layout="regex", pattern=r"(?P<K>[RH])(?P<N>\d{4})(?P<B>[ A-Z0-9]{4})?")
    body = b"R0042B7  "
    line = body + crc(body) + b"\n"
    decoder = FrameDecoder(framing, record)
    assert decoder.feed(line + b"H0001" + crc(b"H0001") + b"\n") == [
        {"K": "R", "N": "0042", "B": "B7  "},
        {"K": "H", "N": "0001"},
    ]
    bad = b"R00x2B7  "
    out = decoder.feed(bad + crc(bad) + b"\n")
    assert isinstance(out[0], Corrupt) and out[0].reason == "no_match"


def test_delimited_key_value_records_with_sum8_and_types() -> None:
    framing = Framing(checksum="sum8_hex", terminator="")
    record = Record(type_field="K", types={"P": {"values": {"PART": "1"}}, "HB": {}})

    def frame(body: bytes) -> bytes:
        return b"\x02" + body + b"\x03" + f"{sum(body) % 256:02X}".encode()

    out = FrameDecoder(framing, record).feed(
        frame(b"K=P|T=5") + frame(b"K=X|T=6") + frame(b"K=HB|T=7") + frame(b"T=8")
    )
    assert out[0] == {"K": "P", "T": "5", "PART": "1"}
    assert isinstance(out[1], Corrupt) and out[1].reason == "unknown_type"
    assert out[2] == {"K": "HB", "T": "7"}
    assert isinstance(out[3], Corrupt) and out[3].reason == "unknown_type"  # no type at all


def test_checksum_inside_a_delimited_frame() -> None:
    framing = Framing(checksum="xor_hex", checksum_separator="*", terminator="")
    body = b"A=1|B=2"
    data = b"\x02" + body + b"*" + xor(body) + b"\x03"
    assert FrameDecoder(framing).feed(data) == [{"A": "1", "B": "2"}]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layout": "regex"}, "needs a pattern"),
        ({"layout": "regex", "pattern": "(a"}, "pattern"),
        ({"layout": "regex", "pattern": "a+"}, "named groups"),
        (
            {"layout": "positional", "fields": ["A"], "type_field": "T", "types": {"x": {}}},
            "one of",
        ),
        ({"type_field": "T"}, "needs types"),
        ({"types": {"x": {}}}, "need a type_field"),
    ],
)
def test_record_layout_mistakes_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Record.model_validate(fields)


def test_check_profile_cli_accepts_the_examples_and_names_a_wrong_field(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edge_agent.cli import app

    runner = CliRunner()
    good = runner.invoke(app, ["check-profile", str(PROFILES / "nmea-counter.yaml")])
    assert good.exit_code == 0 and "test-nmea-counter" in good.output
    bad = tmp_path / "bad.yaml"
    text = (PROFILES / "nmea-counter.yaml").read_text().replace("positional", "columns")
    bad.write_text(text)
    result = runner.invoke(app, ["check-profile", str(bad)])
    assert result.exit_code == 2 and "serial.record.layout" in result.output
